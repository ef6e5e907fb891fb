// Package templates makes a checklist from a (Cluster)ChecklistTemplate: the template's
// phases, metrics and triggers with {{params.NAME}} filled in from the checklist's
// parameters and the template's defaults, then the release's own variables
// ({{namespace}}, {{target}}, {{revision}}, {{checklist}}). A checklist of its own (no
// templateRef) may use parameters too. Parameters are substituted in one pass over every
// string of the checklist: a value is never substituted again, so a parameter holding
// "{{params.x}}" stays as written.
package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// placeholder is {{params.NAME}}.
var placeholder = regexp.MustCompile(`\{\{params\.([A-Za-z][A-Za-z0-9_]*)\}\}`)

// Template is what resolution needs of a template.
type Template struct {
	Kind, Name string
	Generation int64
	Spec       deployv1alpha1.ChecklistTemplateSpec
}

// From reads a ChecklistTemplate or ClusterChecklistTemplate.
func From(obj any) *Template {
	switch t := obj.(type) {
	case *deployv1alpha1.ChecklistTemplate:
		return &Template{Kind: "ChecklistTemplate", Name: t.Name, Generation: t.Generation, Spec: t.Spec}
	case *deployv1alpha1.ClusterChecklistTemplate:
		return &Template{Kind: "ClusterChecklistTemplate", Name: t.Name, Generation: t.Generation, Spec: t.Spec}
	}
	return nil
}

// Error is a resolution that failed, saying what to fix; Reason is a condition reason.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Condition reasons of a checklist that cannot be made.
const (
	ReasonTemplateNotFound = "TemplateNotFound"
	ReasonTemplateInvalid  = "TemplateInvalid"
)

// Resolve makes the checklist's body: the template's (or, with tmpl nil, the checklist's
// own) with parameters filled in, validated as the engine will read it. It returns the
// body and the parameter values used (defaults included).
func Resolve(dcl *deployv1alpha1.DeploymentChecklist, tmpl *Template) (deployv1alpha1.ChecklistBody, map[string]string, error) {
	what := "the checklist"
	body := dcl.Spec.ChecklistBody
	declared := map[string]*string{}
	if tmpl != nil {
		what = tmpl.Kind + " " + tmpl.Name
		body = tmpl.Spec.Template
		for i := range tmpl.Spec.Parameters {
			declared[tmpl.Spec.Parameters[i].Name] = tmpl.Spec.Parameters[i].Default
		}
	} else {
		for k := range dcl.Spec.Parameters {
			declared[k] = nil
		}
	}
	values := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(dcl.Spec.Parameters)) {
		if _, ok := declared[name]; !ok {
			return body, nil, &Error{ReasonTemplateInvalid, fmt.Sprintf("spec.parameters.%s: %s takes no parameter %q (it takes %s)",
				name, what, name, list(slices.Sorted(maps.Keys(declared))))}
		}
		values[name] = dcl.Spec.Parameters[name]
	}
	for _, name := range slices.Sorted(maps.Keys(declared)) {
		if _, ok := values[name]; ok {
			continue
		}
		if d := declared[name]; d != nil {
			values[name] = *d
			continue
		}
		return body, nil, &Error{ReasonTemplateInvalid, fmt.Sprintf("spec.parameters.%s: %s needs it and has no default for it", name, what)}
	}

	raw, err := json.Marshal(body)
	if err != nil {
		return body, nil, err
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return body, nil, err
	}
	s := &substitution{values: values, used: map[string][]string{}}
	tree = s.walk(tree, "spec")
	if s.unknown != "" {
		return body, nil, &Error{ReasonTemplateInvalid, fmt.Sprintf("%s: %s uses {{params.%s}}, which it does not declare",
			s.unknownAt, what, s.unknown)}
	}
	// Then the release's own variables, everywhere (a parameter's default may name
	// them, e.g. http://{{target}}.{{namespace}}.svc): their values are DNS names and a
	// revision, which hold no placeholder, so nothing is substituted twice.
	// In a release of several targets, {{target}} in a metric query is left to the
	// measurement, which fills it in per target for a check or trigger judging one (and
	// with every target for the others).
	vars := checklist.BuiltinVars(dcl)
	queries := takeQueries(tree)
	tree = mapStrings(tree, func(v string) string { return checklist.RenderQuery(v, vars) })
	if len(dcl.Spec.TargetRefs()) > 1 {
		delete(vars, checklist.VarTarget)
	}
	for i, q := range queries {
		if qs, ok := q.(string); ok {
			queries[i] = checklist.RenderQuery(qs, vars)
		}
	}
	putQueries(tree, queries)
	if raw, err = json.Marshal(tree); err != nil {
		return body, nil, err
	}
	var out deployv1alpha1.ChecklistBody
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return body, nil, &Error{ReasonTemplateInvalid, fmt.Sprintf("%s, parameters filled in, does not read as a checklist: %v", what, err)}
	}
	made := dcl.DeepCopy()
	made.Spec.ChecklistBody = out
	if err := checklist.Validate(&made.Spec); err != nil {
		return body, nil, &Error{ReasonTemplateInvalid, fmt.Sprintf("%s, parameters filled in: %v%s", what, err, s.hint(err.Error()))}
	}
	return out, values, nil
}

// substitution fills in one checklist's strings, remembering which parameters went
// where.
type substitution struct {
	values             map[string]string
	used               map[string][]string
	unknown, unknownAt string
}

func (s *substitution) walk(v any, path string) any {
	switch t := v.(type) {
	case string:
		return placeholder.ReplaceAllStringFunc(t, func(m string) string {
			name := placeholder.FindStringSubmatch(m)[1]
			val, ok := s.values[name]
			if !ok {
				if s.unknown == "" {
					s.unknown, s.unknownAt = name, path
				}
				return m
			}
			s.used[path] = append(s.used[path], name)
			return val
		})
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(t)) {
			t[k] = s.walk(t[k], path+"."+k)
		}
	case []any:
		for i := range t {
			t[i] = s.walk(t[i], path+"["+strconv.Itoa(i)+"]")
		}
	}
	return v
}

// mapStrings applies f to every string of a JSON tree.
func mapStrings(v any, f func(string) string) any {
	switch t := v.(type) {
	case string:
		return f(t)
	case map[string]any:
		for k := range t {
			t[k] = mapStrings(t[k], f)
		}
	case []any:
		for i := range t {
			t[i] = mapStrings(t[i], f)
		}
	}
	return v
}

// hint names the parameters that filled the field an error is about.
func (s *substitution) hint(msg string) string {
	var parts []string
	for _, path := range slices.Sorted(maps.Keys(s.used)) {
		if strings.Contains(msg, path+":") || strings.Contains(msg, path+" ") {
			for _, name := range s.used[path] {
				parts = append(parts, fmt.Sprintf("{{params.%s}} = %q", name, s.values[name]))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (from " + strings.Join(parts, ", ") + ")"
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// ErrNotResolved says a checklist made from a template has not been resolved yet.
var ErrNotResolved = errors.New("the checklist's template has not been resolved yet")

// Effective is the checklist tminus walks: made from its template, the body resolved
// in status; with parameters of its own, resolved now; else the checklist as it is.
func Effective(dcl *deployv1alpha1.DeploymentChecklist) (*deployv1alpha1.DeploymentChecklist, error) {
	switch {
	case dcl.Spec.TemplateRef != nil:
		if dcl.Status.Resolved == nil {
			return dcl, ErrNotResolved
		}
		var body deployv1alpha1.ChecklistBody
		if err := json.Unmarshal(dcl.Status.Resolved.Raw, &body); err != nil {
			return dcl, fmt.Errorf("reading status.resolved: %w", err)
		}
		eff := dcl.DeepCopy()
		eff.Spec.ChecklistBody = body
		eff.Spec.Contacts = mergeContacts(dcl.Spec.Contacts, body.Contacts)
		eff.Spec.Runbooks = mergeRunbooks(dcl.Spec.Runbooks, body.Runbooks)
		return eff, nil
	case len(dcl.Spec.Parameters) > 0:
		body, _, err := Resolve(dcl, nil)
		if err != nil {
			return dcl, err
		}
		eff := dcl.DeepCopy()
		eff.Spec.ChecklistBody = body
		return eff, nil
	}
	return dcl, nil
}

// Raw is a resolved body as status keeps it.
func Raw(body deployv1alpha1.ChecklistBody) *runtime.RawExtension {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil
	}
	return &runtime.RawExtension{Raw: raw}
}

// mergeContacts is a checklist's own contacts, then its template's of the other roles:
// read live (not frozen at resolution), so a new on-call engineer written into a
// release in flight is the one the next notification names.
func mergeContacts(own, tmpl []deployv1alpha1.Contact) []deployv1alpha1.Contact {
	out := slices.Clone(own)
	for _, c := range tmpl {
		if !slices.ContainsFunc(own, func(o deployv1alpha1.Contact) bool { return o.Role == c.Role }) {
			out = append(out, c)
		}
	}
	return out
}

// mergeRunbooks is a checklist's own runbooks, then its template's of the other titles.
func mergeRunbooks(own, tmpl []deployv1alpha1.Runbook) []deployv1alpha1.Runbook {
	out := slices.Clone(own)
	for _, r := range tmpl {
		if !slices.ContainsFunc(own, func(o deployv1alpha1.Runbook) bool { return o.Title == r.Title }) {
			out = append(out, r)
		}
	}
	return out
}

// takeQueries takes spec.metrics[].query out of a checklist body's tree (to be put back
// as they are by putQueries).
func takeQueries(tree any) []any {
	body, _ := tree.(map[string]any)
	metrics, _ := body["metrics"].([]any)
	out := make([]any, len(metrics))
	for i, m := range metrics {
		if mm, ok := m.(map[string]any); ok {
			out[i] = mm["query"]
			delete(mm, "query")
		}
	}
	return out
}

// putQueries puts back what takeQueries took.
func putQueries(tree any, queries []any) {
	body, _ := tree.(map[string]any)
	metrics, _ := body["metrics"].([]any)
	for i, m := range metrics {
		if mm, ok := m.(map[string]any); ok && i < len(queries) && queries[i] != nil {
			mm["query"] = queries[i]
		}
	}
}
