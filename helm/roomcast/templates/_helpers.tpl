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
