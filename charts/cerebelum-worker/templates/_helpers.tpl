{{/* The Deployment's name: fullnameOverride, else the release name (one release per worker). */}}
{{- define "cerebelum-worker.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cerebelum-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cerebelum-worker.labels" -}}
{{ include "cerebelum-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: cerebelum
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cerebelum-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cerebelum-worker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cerebelum-worker.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the projected ServiceAccount token is mounted; the token is the file "token" in it. */}}
{{- define "cerebelum-worker.tokenDir" -}}
/var/run/secrets/cerebelum
{{- end -}}

{{/* Whether the workers dial the engine over TLS, and where the CA they verify it with is mounted. */}}
{{- define "cerebelum-worker.tls" -}}
{{- if and .Values.engine.tls.ca .Values.engine.tls.caSecret.name -}}
{{- fail "engine.tls.ca and engine.tls.caSecret.name both give the engine's CA: set only one" -}}
{{- end -}}
{{- if or .Values.engine.tls.enabled .Values.engine.tls.ca .Values.engine.tls.caSecret.name -}}true{{- end -}}
{{- end -}}

{{- define "cerebelum-worker.caDir" -}}
/etc/cerebelum/tls
{{- end -}}
