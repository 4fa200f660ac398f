{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "roomcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart's unless it holds it. */}}
{{- define "roomcast.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "roomcast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roomcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roomcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "roomcast.labels" -}}
helm.sh/chart: {{ include "roomcast.chart" . }}
{{ include "roomcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "roomcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roomcast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "roomcast.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Checks that cannot be expressed in values.schema.json; included by every workload
template so that a bad combination fails the render, whatever is enabled.
*/}}
{{- define "roomcast.validate" -}}
{{- $d := .Values.drain }}
{{- $budget := sub (int $d.terminationGracePeriodSeconds) (int $d.preStopSleepSeconds) }}
{{- if ge (int $d.shutdownTimeoutSeconds) (int $budget) }}
{{- fail (printf "drain: shutdownTimeoutSeconds (%d) must be less than terminationGracePeriodSeconds (%d) - preStopSleepSeconds (%d) = %d, or the kubelet kills the node before it has drained" (int $d.shutdownTimeoutSeconds) (int $d.terminationGracePeriodSeconds) (int $d.preStopSleepSeconds) (int $budget)) }}
{{- end }}
{{- if not .Values.existingSecret.name }}
{{- fail "existingSecret.name is required: the name of a Secret you created holding DATABASE_URL and REDIS_URL (the chart never creates Secrets)" }}
{{- end }}
{{- $a := .Values.autoscaling }}
{{- if and $a.enabled (kindIs "invalid" $a.targetCPUUtilizationPercentage) (kindIs "invalid" $a.targetConnectionsPerPod) }}
{{- fail "autoscaling.enabled needs targetCPUUtilizationPercentage or targetConnectionsPerPod" }}
{{- end }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- $jwt := .Values.auth.jwt }}
{{- if eq $jwt.algorithm "HS256" }}
{{- if $jwt.keySecret.name }}
{{- fail "auth.jwt.keySecret holds RS256/ES256 keys: set auth.jwt.algorithm to RS256 or ES256, or leave keySecret.name empty for HS256" }}
{{- end }}
{{- else }}
{{- if not $jwt.keySecret.name }}
{{- fail (printf "auth.jwt.algorithm %s verifies with a public key: set auth.jwt.keySecret.name to the Secret holding it" $jwt.algorithm) }}
{{- end }}
{{- if .Values.existingSecret.keys.jwtSecret }}
{{- fail (printf "existingSecret.keys.jwtSecret is an HS256 secret; auth.jwt.algorithm %s uses auth.jwt.keySecret instead" $jwt.algorithm) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the JWT key Secret is mounted in the node's container. */}}
{{- define "roomcast.jwtKeyDir" -}}
/etc/roomcast/jwt
{{- end }}

{{/* The IngressClass: the chosen one, else the controller's usual name. */}}
{{- define "roomcast.ingressClassName" -}}
{{- $i := .Values.ingress }}
{{- if $i.className }}{{ $i.className }}{{ else if ne $i.controller "none" }}{{ $i.controller }}{{ end }}
{{- end }}

{{/*
The controller's sticky-session and timeout annotations for the Ingress, as YAML.
Sticky cookies keep every Engine.IO poll of a client on one pod; the timeouts must
outlive pingInterval + pingTimeout so that idle WebSockets are not cut.
*/}}
{{- define "roomcast.ingressControllerAnnotations" -}}
{{- $i := .Values.ingress }}
{{- $timeout := toString $i.proxyTimeoutSeconds }}
{{- if eq $i.controller "nginx" }}
nginx.ingress.kubernetes.io/affinity: cookie
# "persistent": keep the pod even when scaling changes the pod set.
nginx.ingress.kubernetes.io/affinity-mode: persistent
nginx.ingress.kubernetes.io/session-cookie-name: {{ $i.affinity.cookieName | quote }}
nginx.ingress.kubernetes.io/session-cookie-max-age: {{ toString $i.affinity.cookieMaxAge | quote }}
nginx.ingress.kubernetes.io/session-cookie-samesite: {{ $i.affinity.cookieSameSite | quote }}
nginx.ingress.kubernetes.io/session-cookie-path: {{ $i.path | quote }}
nginx.ingress.kubernetes.io/proxy-read-timeout: {{ $timeout | quote }}
nginx.ingress.kubernetes.io/proxy-send-timeout: {{ $timeout | quote }}
# Deliver polling responses as soon as the node writes them.
nginx.ingress.kubernetes.io/proxy-buffering: "off"
{{- else if eq $i.controller "haproxy" }}
haproxy.org/cookie-persistence: {{ $i.affinity.cookieName | quote }}
haproxy.org/timeout-tunnel: {{ printf "%ss" $timeout | quote }}
{{- else if eq $i.controller "traefik" }}
{{- if $i.tlsSecretName }}
traefik.ingress.kubernetes.io/router.tls: "true"
{{- end }}
{{- end }}
{{- end }}

{{/* Traefik reads its sticky cookie from the Service, not from the Ingress. */}}
{{- define "roomcast.serviceControllerAnnotations" -}}
{{- $i := .Values.ingress }}
{{- if and $i.enabled (eq $i.controller "traefik") }}
traefik.ingress.kubernetes.io/service.sticky.cookie: "true"
traefik.ingress.kubernetes.io/service.sticky.cookie.name: {{ $i.affinity.cookieName | quote }}
traefik.ingress.kubernetes.io/service.sticky.cookie.samesite: {{ lower $i.affinity.cookieSameSite | quote }}
traefik.ingress.kubernetes.io/service.sticky.cookie.httponly: "true"
{{- if $i.tlsSecretName }}
traefik.ingress.kubernetes.io/service.sticky.cookie.secure: "true"
{{- end }}
{{- end }}
{{- end }}

{{/* DATABASE_URL from the referenced Secret, shared by the pods and the migration. */}}
{{- define "roomcast.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecret.name }}
      key: {{ .Values.existingSecret.keys.databaseUrl }}
{{- end }}

{{- define "roomcast.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
