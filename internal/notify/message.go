package notify

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// Schema names the generic webhook's JSON (docs/notifications.md).
const Schema = "deploy.tminus.dev/notification/v1"

// Headers of the generic webhook's requests.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the receiver's
	// signing key, of the timestamp header's value, ".", and the body.
	HeaderSignature = "X-Tminus-Signature"
	// HeaderTimestamp is the Unix time of the attempt, in seconds: signed, so a receiver
	// can refuse a replayed request.
	HeaderTimestamp = "X-Tminus-Timestamp"
	// HeaderDelivery is the message's ID, the same on every attempt: a receiver that
	// sees it twice (a manager that stopped between the send and its record) drops it.
	HeaderDelivery = "X-Tminus-Delivery"
	// HeaderEvent is the transition, e.g. RolledBack.
	HeaderEvent = "X-Tminus-Event"
)

// Message is one transition's message: the generic webhook's body, and what the Slack
// and Teams messages are made of.
type Message struct {
	Schema string `json:"schema"`
	// ID is the same on every attempt of this message: <checklist UID>/<key>/<receiver>.
	ID        string                           `json:"id"`
	Event     deployv1alpha1.NotificationEvent `json:"event"`
	Key       string                           `json:"key"`
	Summary   string                           `json:"summary"`
	At        time.Time                        `json:"at"`
	Checklist ChecklistRef                     `json:"checklist"`
	// Deployment is the target's name.
	Deployment string `json:"deployment"`
	Revision   string `json:"revision"`
	// Phase is the checklist's phase when the message was made, CurrentPhase the
	// checklist phase open then (T-15m).
	Phase          string   `json:"phase,omitempty"`
	CurrentPhase   string   `json:"currentPhase,omitempty"`
	Images         []string `json:"images,omitempty"`
	PreviousImages []string `json:"previousImages,omitempty"`
	// Trigger is the rollback trigger that fired (RolledBack by a trigger).
	Trigger *Trigger `json:"trigger,omitempty"`
	// Request is the person's request the checklist acted on (RolledBack at a
	// person's request, Failed by an abort): who and why.
	Request *Request `json:"request,omitempty"`
	// Contacts are whom to call (spec.contacts, the template's merged in).
	Contacts []Contact `json:"contacts,omitempty"`
	// Runbooks are what a responder reads (spec.runbooks, the template's merged in).
	Runbooks []Runbook `json:"runbooks,omitempty"`
	// Command shows the checklist in a terminal.
	Command string `json:"command"`

	// kind is what Slack and Teams label Deployment with: the targets' kind when they
	// share it, "Workloads" when not. The body keeps the field "deployment" for the
	// receivers reading it.
	kind string
}

// Contact is someone to call during the release.
type Contact struct {
	Role  string `json:"role"`
	Name  string `json:"name"`
	Reach string `json:"reach"`
}

// Runbook is a link a responder reads.
type Runbook struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Request is who asked for a rollback or an abort, and why.
type Request struct {
	Kind   string `json:"kind"`
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// ChecklistRef names the checklist.
type ChecklistRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// NewMessage makes the message of entry n of dcl (the checklist as walked).
func NewMessage(dcl *deployv1alpha1.DeploymentChecklist, n *deployv1alpha1.NotificationStatus) Message {
	st := &dcl.Status
	m := Message{
		Schema: Schema, ID: fmt.Sprintf("%s/%s/%s", dcl.UID, n.Key, n.Receiver),
		Event: n.Event, Key: n.Key, Summary: n.Summary, At: n.At.UTC(),
		Checklist:  ChecklistRef{Namespace: dcl.Namespace, Name: dcl.Name, UID: string(dcl.UID)},
		Deployment: strings.Join(dcl.Spec.TargetNames(), ","), Revision: approval.Revision(dcl),
		Phase: string(st.Phase), CurrentPhase: st.CurrentPhase,
		Command: fmt.Sprintf("kubectl checklist status %s -n %s", dcl.Name, dcl.Namespace),
		kind:    targetsKind(dcl.Spec.TargetRefs()),
	}
	for _, c := range dcl.Spec.Contacts {
		m.Contacts = append(m.Contacts, Contact{Role: c.Role, Name: c.Name, Reach: c.Reach})
	}
	for _, r := range dcl.Spec.Runbooks {
		m.Runbooks = append(m.Runbooks, Runbook{Title: r.Title, URL: r.URL})
	}
	for _, ts := range st.TargetsOf(&dcl.Spec) {
		m.Images, m.PreviousImages = append(m.Images, ts.CandidateImages...), append(m.PreviousImages, ts.PreDeployImages...)
	}
	if n.Event == deployv1alpha1.NotifyRolledBack {
		m.Trigger = FiredTrigger(dcl, st)
	}
	if rq := st.Request; rq != nil && rq.State == deployv1alpha1.RequestActed &&
		(n.Event == deployv1alpha1.NotifyRolledBack || n.Event == deployv1alpha1.NotifyFailed) {
		m.Request = &Request{Kind: string(rq.Kind), By: rq.By, Reason: rq.Reason}
	}
	return m
}

// targetsKind is the kind the targets share, "Workloads" when they do not.
func targetsKind(refs []deployv1alpha1.TargetRef) string {
	for _, r := range refs {
		if r.KindOf() != refs[0].KindOf() {
			return "Workloads"
		}
	}
	if len(refs) == 0 {
		return deployv1alpha1.KindDeployment
	}
	return refs[0].KindOf()
}

// title is the message's headline.
func (m *Message) title() string {
	verb := map[deployv1alpha1.NotificationEvent]string{
		deployv1alpha1.NotifyAwaitingSignOff: "needs sign-off",
		deployv1alpha1.NotifyReleased:        "released",
		deployv1alpha1.NotifySucceeded:       "verified",
		deployv1alpha1.NotifyRolledBack:      "rolled back",
		deployv1alpha1.NotifyFailed:          "failed",
		deployv1alpha1.NotifyDegraded:        "degraded: measurements unavailable",
		deployv1alpha1.NotifyHeldChange:      "holds a change",
	}[m.Event]
	return fmt.Sprintf("%s %s %s", m.Deployment, m.Revision, verb)
}

// facts are the message's name/value pairs, in order.
func (m *Message) facts() [][2]string {
	f := [][2]string{
		{"Checklist", m.Checklist.Namespace + "/" + m.Checklist.Name},
		{cmp.Or(m.kind, deployv1alpha1.KindDeployment), m.Deployment},
		{"Revision", m.Revision},
	}
	if m.CurrentPhase != "" {
		f = append(f, [2]string{"Phase", m.CurrentPhase})
	}
	if len(m.Images) > 0 {
		f = append(f, [2]string{"Images", strings.Join(m.Images, ", ")})
	}
	if t := m.Trigger; t != nil {
		f = append(f, [2]string{"Trigger", t.Name}, [2]string{"Value", t.Value}, [2]string{"Threshold", t.Threshold})
	}
	if r := m.Request; r != nil {
		f = append(f, [2]string{r.Kind + " requested by", r.By}, [2]string{"Reason", r.Reason})
	}
	return f
}

// severe says whether the message tells of something gone wrong.
func (m *Message) severe() bool {
	switch m.Event {
	case deployv1alpha1.NotifyRolledBack, deployv1alpha1.NotifyFailed, deployv1alpha1.NotifyDegraded,
		deployv1alpha1.NotifyHeldChange:
		return true
	}
	return false
}

// WebhookBody is the generic webhook's body: the message as JSON.
func WebhookBody(m Message) ([]byte, error) { return marshal(m) }

// Sign is the value of HeaderSignature for body sent at ts, keyed with key.
func Sign(key []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Block types of the payloads.
const (
	mrkdwn    = "mrkdwn"
	section   = "section"
	textBlock = "TextBlock"
	bolder    = "Bolder"
)

// SlackBody is a Slack incoming webhook's payload: text (the notification's fallback)
// and Block Kit blocks (header, summary, fields, the query, a context line).
func SlackBody(m Message) ([]byte, error) {
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type     string `json:"type"`
		Text     *text  `json:"text,omitempty"`
		Fields   []text `json:"fields,omitempty"`
		Elements []text `json:"elements,omitempty"`
	}
	blocks := []block{
		{Type: "header", Text: &text{Type: "plain_text", Text: checklist.Truncate(m.title(), 150)}},
		{Type: section, Text: &text{Type: mrkdwn, Text: checklist.Truncate(slackEscape(m.Summary), 3000)}},
	}
	facts := m.facts()
	fields := make([]text, 0, len(facts))
	for _, f := range facts {
		fields = append(fields, text{Type: mrkdwn, Text: checklist.Truncate("*"+f[0]+"*\n"+slackEscape(f[1]), 2000)})
	}
	blocks = append(blocks, block{Type: section, Fields: fields[:min(len(fields), 10)]})
	if t := m.Trigger; t != nil && t.Query != "" {
		blocks = append(blocks, block{Type: section,
			Text: &text{Type: mrkdwn, Text: checklist.Truncate("*Query*\n```"+slackEscape(t.Query)+"```", 3000)}})
	}
	if people := m.slackPeople(); people != "" {
		blocks = append(blocks, block{Type: section, Text: &text{Type: mrkdwn, Text: checklist.Truncate(people, 3000)}})
	}
	blocks = append(blocks, block{Type: "context", Elements: []text{{Type: mrkdwn,
		Text: "`" + m.Command + "` · tminus · " + m.At.Format(time.RFC3339)}}})
	return marshal(struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}{Text: slackEscape(m.title() + ": " + m.Summary), Blocks: blocks})
}

// slackPeople is the contacts and runbooks as one mrkdwn text, or "".
func (m *Message) slackPeople() string {
	var b strings.Builder
	if len(m.Contacts) > 0 {
		b.WriteString("*Contacts*")
		for _, c := range m.Contacts {
			fmt.Fprintf(&b, "\n• %s: %s, %s", slackEscape(c.Role), slackEscape(c.Name), slackEscape(c.Reach))
		}
	}
	if len(m.Runbooks) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("*Runbooks*")
		for _, r := range m.Runbooks {
			// A link's URL and label may not hold | or >; the URL was validated as
			// http(s) without spaces, the label is escaped.
			fmt.Fprintf(&b, "\n• <%s|%s>", slackEscape(r.URL), strings.ReplaceAll(slackEscape(r.Title), "|", "¦"))
		}
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// TeamsBody is what a Microsoft Teams Workflows webhook ("Post to a channel when a
// webhook request is received") takes: a message with one Adaptive Card attachment.
func TeamsBody(m Message) ([]byte, error) {
	type fact struct {
		Title string `json:"title"`
		Value string `json:"value"`
	}
	type element struct {
		Type     string `json:"type"`
		Text     string `json:"text,omitempty"`
		Size     string `json:"size,omitempty"`
		Weight   string `json:"weight,omitempty"`
		Color    string `json:"color,omitempty"`
		FontType string `json:"fontType,omitempty"`
		IsSubtle bool   `json:"isSubtle,omitempty"`
		Wrap     bool   `json:"wrap,omitempty"`
		Facts    []fact `json:"facts,omitempty"`
	}
	color := "Good"
	if m.severe() {
		color = "Attention"
	}
	body := []element{
		{Type: textBlock, Text: m.title(), Size: "Large", Weight: bolder, Color: color, Wrap: true},
		{Type: textBlock, Text: m.Summary, Wrap: true},
	}
	pairs := m.facts()
	facts := make([]fact, 0, len(pairs))
	for _, f := range pairs {
		facts = append(facts, fact{Title: f[0], Value: f[1]})
	}
	body = append(body, element{Type: "FactSet", Facts: facts})
	if t := m.Trigger; t != nil && t.Query != "" {
		body = append(body, element{Type: textBlock, Text: t.Query, FontType: "Monospace", Wrap: true})
	}
	if len(m.Contacts) > 0 {
		contacts := make([]fact, 0, len(m.Contacts))
		for _, c := range m.Contacts {
			contacts = append(contacts, fact{Title: c.Role, Value: c.Name + ", " + c.Reach})
		}
		body = append(body, element{Type: textBlock, Text: "Contacts", Weight: bolder, Wrap: true},
			element{Type: "FactSet", Facts: contacts})
	}
	if len(m.Runbooks) > 0 {
		links := make([]string, 0, len(m.Runbooks))
		for _, r := range m.Runbooks {
			links = append(links, "- ["+r.Title+"]("+r.URL+")")
		}
		body = append(body, element{Type: textBlock, Text: "Runbooks", Weight: bolder, Wrap: true},
			element{Type: textBlock, Text: strings.Join(links, "\n"), Wrap: true})
	}
	body = append(body, element{Type: textBlock, Text: m.Command + " · " + m.At.Format(time.RFC3339),
		IsSubtle: true, Size: "Small", Wrap: true})
	type card struct {
		Schema  string    `json:"$schema"`
		Type    string    `json:"type"`
		Version string    `json:"version"`
		Body    []element `json:"body"`
	}
	type attachment struct {
		ContentType string  `json:"contentType"`
		ContentURL  *string `json:"contentUrl"`
		Content     card    `json:"content"`
	}
	return marshal(struct {
		Type        string       `json:"type"`
		Attachments []attachment `json:"attachments"`
	}{Type: "message", Attachments: []attachment{{ContentType: "application/vnd.microsoft.card.adaptive",
		Content: card{Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard",
			Version: "1.4", Body: body}}}})
}

// marshal is json.Marshal without HTML escaping: a query's < and > stay readable.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
