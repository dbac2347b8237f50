{{- define "kbo.name" -}}kafka-backup-operator{{- end -}}
{{- define "kbo.fullname" -}}{{ .Release.Name }}-kafka-backup-operator{{- end -}}
{{- define "kbo.labels" -}}
app.kubernetes.io/name: {{ include "kbo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "kbo.selector" -}}
app.kubernetes.io/name: {{ include "kbo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "kbo.serviceAccount" -}}{{ default (include "kbo.fullname" .) .Values.serviceAccount.name }}{{- end -}}
