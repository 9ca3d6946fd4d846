{{/*
Names, labels and the small computations every template shares. One place, so the Deployment, its Service, its
monitors and its autoscalers can never disagree about a name or a selector.
*/}}

{{/* The chart's name, overridable: the app.kubernetes.io/name label. */}}
{{- define "mics-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release-scoped object name: DNS-1123, at most 63 characters. */}}
{{- define "mics-worker.fullname" -}}
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

{{- define "mics-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: fixed for the Deployment's lifetime (a selector cannot change), so nothing versioned here. */}}
{{- define "mics-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mics-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mics-worker.labels" -}}
{{ include "mics-worker.selectorLabels" . }}
app.kubernetes.io/component: worker
{{ include "mics-worker.releaseLabels" . }}
{{- end }}

{{/* The chart test pod's labels: deliberately outside the selector, so no Service or PDB ever counts it. */}}
{{- define "mics-worker.testLabels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "mics-worker.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{ include "mics-worker.releaseLabels" . }}
{{- end }}

{{- define "mics-worker.releaseLabels" -}}
helm.sh/chart: {{ include "mics-worker.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mics-worker
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mics-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mics-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mics-worker.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the API token and the key inside it: the chart's own, or the existing one named in values. */}}
{{- define "mics-worker.tokenSecretName" -}}
{{- if .Values.apiToken.existingSecret.name }}
{{- .Values.apiToken.existingSecret.name }}
{{- else }}
{{- printf "%s-api-token" (include "mics-worker.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "mics-worker.tokenSecretKey" -}}
{{- if .Values.apiToken.existingSecret.name }}{{ .Values.apiToken.existingSecret.key }}{{ else }}token{{ end }}
{{- end }}

{{/* True (non-empty) when the pod gets a token: from the chart's Secret or an existing one. */}}
{{- define "mics-worker.hasToken" -}}
{{- if or .Values.apiToken.value .Values.apiToken.existingSecret.name }}true{{ end }}
{{- end }}

{{/* The most pods that can run at once: what decides whether a PodDisruptionBudget makes sense. */}}
{{- define "mics-worker.maxReplicas" -}}
{{- if .Values.keda.enabled }}{{ .Values.keda.maxReplicaCount }}
{{- else if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}
{{- else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* The drain time plus the margin for closing the consumer and flushing the DLQ producer. */}}
{{- define "mics-worker.terminationGracePeriodSeconds" -}}
{{- add .Values.config.drainTimeoutSeconds .Values.terminationGraceMarginSeconds }}
{{- end }}

{{/*
A value as the worker should read it. YAML numbers reach templates as float64, which print as 5.24288e+07;
whole numbers are printed as integers instead.
*/}}
{{- define "mics-worker.scalar" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* librdkafka property → the variable the worker maps back to it: sasl.mechanism → MICS_WORKER_KAFKA_SASL_MECHANISM. */}}
{{- define "mics-worker.kafkaEnvName" -}}
{{- printf "MICS_WORKER_KAFKA_%s" (. | upper | replace "." "_") }}
{{- end }}

{{/*
Rules that tie two values together; the schema checks each value alone. Included by the Deployment so that every
render (install, upgrade, template, lint) runs them.
*/}}
{{- define "mics-worker.validate" -}}
{{- $config := .Values.config }}
{{- if and $config.topics $config.topicPattern }}
{{- fail "config.topics and config.topicPattern are both set: set exactly one" }}
{{- end }}
{{- if not (or $config.topics $config.topicPattern) }}
{{- fail "neither config.topics nor config.topicPattern is set: set exactly one" }}
{{- end }}
{{- if and .Values.apiToken.value .Values.apiToken.existingSecret.name }}
{{- fail "apiToken.value and apiToken.existingSecret.name are both set: the token comes from one Secret only" }}
{{- end }}
{{- if and .Values.keda.enabled .Values.autoscaling.enabled }}
{{- fail "keda.enabled and autoscaling.enabled are both true: two autoscalers would fight over the replica count; enable one" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- fail "keda.minReplicaCount is above keda.maxReplicaCount" }}
{{- end }}
{{- range .Values.config.kafkaSecrets }}
{{- if hasKey $config.kafka .property }}
{{- fail (printf "librdkafka property %s is set in both config.kafka and config.kafkaSecrets" .property) }}
{{- end }}
{{- end }}
{{- end }}
