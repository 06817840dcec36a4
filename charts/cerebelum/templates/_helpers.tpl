{{/* The release's full name: the release name, or <release>-cerebelum when it does not say cerebelum. */}}
{{- define "cerebelum.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cerebelum.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cerebelum.labels" -}}
{{ include "cerebelum.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cerebelum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cerebelum.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cerebelum.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding the gRPC endpoint's certificate (tls.crt, tls.key; ca.crt when generated). */}}
{{- define "cerebelum.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "cerebelum.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/* The names workers may dial the Service by; every certificate the chart makes holds them all. */}}
{{- define "cerebelum.dnsNames" -}}
{{- $name := include "cerebelum.fullname" . -}}
{{- $names := list $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.cluster.local" $name .Release.Namespace) -}}
{{- concat $names .Values.tls.extraDnsNames | uniq | toJson -}}
{{- end -}}

{{/* "true" when the web UI is on, else "". `helm upgrade --reuse-values` from a chart without the UI
     renders with that chart's values, where `ui` is missing: the UI stays off, and turning it on
     needs the new defaults too (--reset-then-reuse-values). */}}
{{- define "cerebelum.uiEnabled" -}}
{{- $ui := .Values.ui | default dict -}}
{{- if $ui.enabled -}}
{{- if not (and $ui.port $ui.service $ui.ingress) -}}
{{- fail "ui.enabled=true, but ui.port, ui.service or ui.ingress is missing: the values come from a chart without the UI (helm upgrade --reuse-values); upgrade with --reset-then-reuse-values to take the new defaults" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* Refuse combinations of values that would be unsafe or could not work, naming the values and
     the way out. (The schema checks each value alone; these span several.) */}}
{{- define "cerebelum.validate" -}}
{{- $v := .Values -}}
{{- $exposed := ne $v.service.type "ClusterIP" -}}
{{- if and (eq $v.auth.mode "none") (not $v.networkPolicy.enabled) -}}
{{- fail "auth.mode=none with networkPolicy.enabled=false lets every pod in the cluster take any namespace's tasks and start executions: use auth.mode=kubernetes, or keep the NetworkPolicy on" -}}
{{- end -}}
{{- if and (eq $v.auth.mode "none") $exposed -}}
{{- fail (printf "auth.mode=none with service.type=%s serves unauthenticated gRPC outside the cluster: use auth.mode=kubernetes or service.type=ClusterIP" $v.service.type) -}}
{{- end -}}
{{- if and $exposed (not $v.tls.enabled) -}}
{{- fail (printf "service.type=%s with tls.enabled=false sends workers' tokens and step payloads in plaintext outside the cluster: set tls.enabled=true" $v.service.type) -}}
{{- end -}}
{{- if and $exposed $v.networkPolicy.enabled (not $v.networkPolicy.grpc.extraFrom) -}}
{{- fail (printf "service.type=%s: the NetworkPolicy admits only pods matching networkPolicy.grpc, so clients outside the cluster cannot connect: list them in networkPolicy.grpc.extraFrom (e.g. an ipBlock)" $v.service.type) -}}
{{- end -}}
{{- if and (eq $v.auth.mode "none") $v.auth.accessPolicy -}}
{{- fail "auth.accessPolicy is enforced only with auth.mode=kubernetes; with auth.mode=none nobody is identified and the policy would be ignored" -}}
{{- end -}}
{{- if and $v.operator.sharding.enabled (ne $v.storage.type "postgresql") -}}
{{- fail "operator.sharding.enabled needs storage.type=postgresql: replicas share one store" -}}
{{- end -}}
{{- if and $v.tls.existingSecret (not $v.tls.enabled) -}}
{{- fail "tls.existingSecret is set but tls.enabled=false, so gRPC would be plaintext: set tls.enabled=true" -}}
{{- end -}}
{{- if and $v.tls.certManager.enabled (not $v.tls.enabled) -}}
{{- fail "tls.certManager.enabled=true but tls.enabled=false, so gRPC would be plaintext: set tls.enabled=true" -}}
{{- end -}}
{{- if and $v.storage.retention.export.enabled (not $v.storage.retention.period) -}}
{{- fail "storage.retention.export.enabled writes what storage.retention.period removes: set storage.retention.period too" -}}
{{- end -}}
{{- if and $v.storage.retention.period (eq $v.operator.executionTtl "never") -}}
{{- fail "storage.retention.period removes histories, but operator.executionTtl=never keeps Execution objects for ever: they would outlive their histories; set operator.executionTtl to the period or less" -}}
{{- end -}}
{{- $ui := $v.ui | default dict -}}
{{- $uiOn := include "cerebelum.uiEnabled" . -}}
{{- if and ($ui.ingress | default dict).enabled (not $uiOn) -}}
{{- fail "ui.ingress.enabled=true but ui.enabled=false: there is no UI to route to; set ui.enabled=true or drop the Ingress" -}}
{{- end -}}
{{- if $uiOn -}}
{{- if has (int $ui.port) (list 7450 8080) -}}
{{- fail (printf "ui.port=%d is taken on the pod (7450: gRPC, 8080: health and metrics): choose another port" (int $ui.port)) -}}
{{- end -}}
{{- $uiExposed := or $ui.ingress.enabled (ne $ui.service.type "ClusterIP") -}}
{{- $uiBy := ternary "ui.ingress.enabled=true" (printf "ui.service.type=%s" $ui.service.type) (eq $ui.ingress.enabled true) -}}
{{- if and $uiExposed (eq $v.auth.mode "none") -}}
{{- fail (printf "auth.mode=none with %s serves the web UI without a login outside the cluster: use auth.mode=kubernetes, or reach the UI with kubectl port-forward" $uiBy) -}}
{{- end -}}
{{- if and $uiExposed $v.networkPolicy.enabled (not $v.networkPolicy.uiFrom) -}}
{{- fail (printf "%s: the NetworkPolicy admits no pod to the web UI, so nothing can reach it: list the Ingress controller's pods (or the load balancer's addresses) in networkPolicy.uiFrom" $uiBy) -}}
{{- end -}}
{{- end -}}
{{- if and $v.tls.certManager.enabled $v.tls.existingSecret -}}
{{- fail "tls.existingSecret and tls.certManager.enabled both name where the certificate comes from: set only one" -}}
{{- end -}}
{{- if and $v.tls.enabled $v.tls.certManager.enabled (not $v.tls.certManager.issuerRef.name) -}}
{{- fail "tls.certManager.enabled=true needs tls.certManager.issuerRef.name: the cert-manager Issuer or ClusterIssuer that signs the certificate" -}}
{{- end -}}
{{- end -}}
