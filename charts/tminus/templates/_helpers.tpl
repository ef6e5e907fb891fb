{{/* Labels every object of the chart carries. */}}
{{- define "tminus.labels" -}}
app.kubernetes.io/name: tminus
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The manager pods' selector. */}}
{{- define "tminus.selector" -}}
app.kubernetes.io/name: tminus
control-plane: controller-manager
{{- end }}

{{/* The manager's image. */}}
{{- define "tminus.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
