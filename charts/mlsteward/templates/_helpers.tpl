{{/* Common names and labels. */}}

{{- define "mlsteward.name" -}}mlsteward-operator{{- end -}}

{{- define "mlsteward.serviceAccountName" -}}
{{- default "mlsteward-operator" .Values.serviceAccount.name -}}
{{- end -}}

{{- define "mlsteward.labels" -}}
app.kubernetes.io/part-of: mlsteward
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mlsteward.selectorLabels" -}}
app.kubernetes.io/name: mlsteward-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mlsteward.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "mlsteward.workloadImage" -}}
{{- printf "%s:%s" .Values.workloadImage.repository (default .Chart.AppVersion .Values.workloadImage.tag) -}}
{{- end -}}

{{/* True when PodMonitor/PrometheusRule objects should be rendered. */}}
{{- define "mlsteward.prometheusOperator" -}}
{{- $mode := toString .Values.monitoring.prometheusOperator -}}
{{- if or (eq $mode "true") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
true
{{- end -}}
{{- end -}}
