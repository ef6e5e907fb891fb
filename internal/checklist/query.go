package checklist

import (
	"regexp"
	"strings"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Query variables. The first four are known when the checklist is written; the
// pod-template-hashes once the Deployment ran the template they name.
const (
	VarNamespace                = "namespace"
	VarTarget                   = "target"
	VarRevision                 = "revision"
	VarChecklist                = "checklist"
	VarPodTemplateHash          = "podTemplateHash"
	VarPreDeployPodTemplateHash = "preDeployPodTemplateHash"
)

// listSep separates the values of a variable that stands for several (the names of a
// release's targets, {{target}}): rendered as a regular expression's alternation in a
// group, for a matcher such as deployment=~"{{target}}" or pod=~"{{target}}-.*".
const listSep = "\x00"

// hashVars are the variables known only once a ReplicaSet exists.
var hashVars = []string{VarPodTemplateHash, VarPreDeployPodTemplateHash}

// BuiltinVars are the variables every string of a checklist may use.
func BuiltinVars(dcl *deployv1alpha1.DeploymentChecklist) map[string]string {
	return map[string]string{
		VarNamespace: dcl.Namespace,
		VarTarget:    strings.Join(dcl.Spec.TargetNames(), listSep),
		VarRevision:  dcl.Spec.Revision,
		VarChecklist: dcl.Name,
	}
}

// QueryVars are the variables of a metric query: the built-ins and, once recorded in
// status, {{podTemplateHash}} (the released ReplicaSet's pod-template-hash) and
// {{preDeployPodTemplateHash}} (the one that served before).
func QueryVars(dcl *deployv1alpha1.DeploymentChecklist) map[string]string {
	v := BuiltinVars(dcl)
	if ts := oneTarget(dcl); ts != nil {
		if ts.ReleasedPodTemplateHash != "" {
			v[VarPodTemplateHash] = ts.ReleasedPodTemplateHash
		}
		if ts.PreDeployPodTemplateHash != "" {
			v[VarPreDeployPodTemplateHash] = ts.PreDeployPodTemplateHash
		}
	}
	return v
}

// BaselineVars are the variables of a baseline query: the same query asked of the
// version that served before the release, so {{podTemplateHash}} stands for the
// pre-deploy ReplicaSet's hash.
func BaselineVars(dcl *deployv1alpha1.DeploymentChecklist) map[string]string {
	v := BuiltinVars(dcl)
	if ts := oneTarget(dcl); ts != nil && ts.PreDeployPodTemplateHash != "" {
		v[VarPodTemplateHash] = ts.PreDeployPodTemplateHash
		v[VarPreDeployPodTemplateHash] = ts.PreDeployPodTemplateHash
	}
	return v
}

// MetricKey is what a measurement of metric is known by: its name, or, for a check or
// trigger judging one target, metric@target (the query asked of that target's series).
func MetricKey(metric, target string) string {
	if target == "" {
		return metric
	}
	return metric + "@" + target
}

// SplitMetricKey is MetricKey read back: the metric's name and the target ("" for the
// whole release). Metric names are DNS labels, so they hold no @.
func SplitMetricKey(key string) (metric, target string) {
	metric, target, _ = strings.Cut(key, "@")
	return metric, target
}

// QueryVarsFor are the variables of a metric query judging the named target ("" for
// the whole release, QueryVars): {{target}} is that target alone, and the
// pod-template-hashes are its own.
func QueryVarsFor(dcl *deployv1alpha1.DeploymentChecklist, target string) map[string]string {
	if target == "" {
		return QueryVars(dcl)
	}
	v := BuiltinVars(dcl)
	v[VarTarget] = target
	if ts := dcl.TargetStatusOf(target); ts != nil {
		if ts.ReleasedPodTemplateHash != "" {
			v[VarPodTemplateHash] = ts.ReleasedPodTemplateHash
		}
		if ts.PreDeployPodTemplateHash != "" {
			v[VarPreDeployPodTemplateHash] = ts.PreDeployPodTemplateHash
		}
	}
	return v
}

// BaselineVarsFor are BaselineVars for the named target ("" for the whole release).
func BaselineVarsFor(dcl *deployv1alpha1.DeploymentChecklist, target string) map[string]string {
	if target == "" {
		return BaselineVars(dcl)
	}
	v := BuiltinVars(dcl)
	v[VarTarget] = target
	if ts := dcl.TargetStatusOf(target); ts != nil && ts.PreDeployPodTemplateHash != "" {
		v[VarPodTemplateHash] = ts.PreDeployPodTemplateHash
		v[VarPreDeployPodTemplateHash] = ts.PreDeployPodTemplateHash
	}
	return v
}

// ResolveQuery fills in a metric query's variables known now (QueryVars).
func ResolveQuery(dcl *deployv1alpha1.DeploymentChecklist, query string) string {
	return RenderQuery(query, QueryVars(dcl))
}

// UsesHashes says whether a query names a pod-template-hash variable, which is known
// only after the release.
func UsesHashes(query string) bool {
	for _, v := range hashVars {
		if strings.Contains(query, "{{"+v+"}}") {
			return true
		}
	}
	return false
}

// Unresolved says whether a rendered query still holds a variable that was not known:
// such a query is not sent (it would select the wrong series).
func Unresolved(query string) bool { return UsesHashes(query) }

// RenderQuery fills {{name}} with vars[name], escaped for where it stands in PromQL:
// inside a string after =~ or !~ the value is a regular expression's literal text (so
// the dots of a namespace or revision match dots only); inside any string, quotes and
// backslashes are escaped. Placeholders of unknown variables are left as written, and
// values are never scanned for placeholders again.
func RenderQuery(query string, vars map[string]string) string {
	if !strings.Contains(query, "{{") {
		return query
	}
	var b strings.Builder
	var quote byte // the open string's quote, 0 outside strings
	regex := false
	for i := 0; i < len(query); {
		c := query[i]
		if c == '{' && strings.HasPrefix(query[i:], "{{") {
			if end := strings.Index(query[i+2:], "}}"); end >= 0 {
				name := query[i+2 : i+2+end]
				if v, ok := vars[name]; ok {
					b.WriteString(escapeIn(v, quote, regex))
					i += 2 + end + 2
					continue
				}
			}
		}
		switch {
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
			before := strings.TrimRight(b.String(), " \t\n")
			regex = strings.HasSuffix(before, "=~") || strings.HasSuffix(before, "!~")
		case quote != 0 && quote != '`' && c == '\\' && i+1 < len(query):
			b.WriteByte(c)
			i++
			c = query[i]
		case quote != 0 && c == quote:
			quote = 0
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// escapeIn spells v for a place in a query: inside a string opened by quote (0:
// outside strings), as a regular expression's literal text when regex.
func escapeIn(v string, quote byte, regex bool) string {
	if quote == 0 {
		return strings.ReplaceAll(v, listSep, "|")
	}
	if regex {
		parts := strings.Split(v, listSep)
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		v = strings.Join(parts, "|")
		if len(parts) > 1 {
			v = "(" + v + ")"
		}
	}
	v = strings.ReplaceAll(v, listSep, "|")
	switch quote {
	case '`':
		// A raw string has no escapes; a backquote cannot be written in one.
		return strings.ReplaceAll(v, "`", "")
	default:
		v = strings.ReplaceAll(v, `\`, `\\`)
		return strings.ReplaceAll(v, string(quote), `\`+string(quote))
	}
}

// oneTarget is the status of a release's one target; nil for a release of several
// (whose hashes are per target).
func oneTarget(dcl *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.TargetStatus {
	if names := dcl.Spec.TargetNames(); len(names) == 1 {
		return dcl.TargetStatusOf(names[0])
	}
	return nil
}

// metricName is the metric a measurement key (MetricKey) measures.
func metricName(key string) string {
	name, _ := SplitMetricKey(key)
	return name
}
