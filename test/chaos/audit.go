package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/tminus-dev/tminus/test/testbed"
)

// auditTail reads the API server's audit log as it grows and keeps the writes the
// invariants need: tminus's successful writes to the runs' Deployments and checklists,
// and to the shards' Leases.
type auditTail struct {
	path string

	mu     sync.Mutex
	offset int64
	rest   []byte
	// writes by namespace, in the log's order.
	writes map[string][]testbed.AuditEvent
	// leases are the writes to each shard's Lease, by name.
	leases map[string][]testbed.AuditEvent
}

func newAuditTail(path string) *auditTail {
	return &auditTail{path: path, writes: map[string][]testbed.AuditEvent{}, leases: map[string][]testbed.AuditEvent{}}
}

// tminusWrites reads what the log gained and returns tminus's writes to ns's
// Deployments and checklists so far, and the writes to the shards' Leases.
func (a *auditTail) tminusWrites(ns string) (writes []testbed.AuditEvent, leases map[string][]testbed.AuditEvent,
	err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.readLocked(); err != nil {
		return nil, nil, err
	}
	leases = make(map[string][]testbed.AuditEvent, len(a.leases))
	for name, ls := range a.leases {
		leases[name] = slices.Clip(ls)
	}
	w := a.writes[ns]
	return slices.Clip(w), leases, nil
}

func (a *auditTail) readLocked() error {
	f, err := os.Open(a.path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return err
	}
	raw, err := io.ReadAll(bufio.NewReader(f))
	if err != nil {
		return err
	}
	a.offset += int64(len(raw))
	buf := append(a.rest, raw...)
	last := bytes.LastIndexByte(buf, '\n')
	if last < 0 {
		a.rest = buf
		return nil
	}
	a.rest = append([]byte(nil), buf[last+1:]...)
	for line := range bytes.SplitSeq(buf[:last], []byte{'\n'}) {
		// Most lines are other writers' (leases, the Deployment controller): skip them
		// before decoding.
		ours := bytes.Contains(line, []byte(`"userAgent":"`+userAgentPrefix))
		watched := bytes.Contains(line, []byte(`"resource":"deployments"`)) ||
			bytes.Contains(line, []byte(`"resource":"deploymentchecklists"`)) ||
			bytes.Contains(line, []byte(`"resource":"leases"`))
		if !ours || !watched {
			continue
		}
		var e testbed.AuditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		switch {
		case e.ResponseStatus.Code >= 300:
		case e.ObjectRef.Resource == "leases":
			if e.ObjectRef.Namespace == managerNamespace && shardLease.MatchString(e.ObjectRef.Name) {
				a.leases[e.ObjectRef.Name] = append(a.leases[e.ObjectRef.Name], e)
			}
		case strings.HasPrefix(e.ObjectRef.Namespace, namespacePrefix):
			a.writes[e.ObjectRef.Namespace] = append(a.writes[e.ObjectRef.Namespace], e)
		}
	}
	return nil
}

var shardLease = regexp.MustCompile(`^tminus-shard-[0-9]+$`)
