{{/* Names, labels and the server's command line, shared by every template. */}}

{{- define "featured.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name; 54 characters leave room for "-headless". */}}
{{- define "featured.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "featured.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: never change them, a StatefulSet's selector is immutable. */}}
{{- define "featured.selectorLabels" -}}
app.kubernetes.io/name: {{ include "featured.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "featured.labels" -}}
helm.sh/chart: {{ include "featured.chart" . }}
{{ include "featured.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: featured
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "featured.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "featured.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "featured.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the definitions file, or empty when there is none. */}}
{{- define "featured.definitionsConfigMap" -}}
{{- if .Values.definitions.existingConfigMap }}
{{- .Values.definitions.existingConfigMap }}
{{- else if .Values.definitions.inline }}
{{- printf "%s-definitions" (include "featured.fullname" .) }}
{{- end }}
{{- end }}

{{- define "featured.dataDir" -}}
{{- printf "%s/data" (trimSuffix "/" .Values.persistence.mountPath) }}
{{- end }}

{{/*
Checks the values cannot express on their own; each failure names the value
to change.
*/}}
{{- define "featured.validate" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- $stop := add (int .Values.shutdownTimeoutSeconds) (int .Values.preStopSleepSeconds) }}
{{- if le $grace $stop }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + shutdownTimeoutSeconds (%d): the final commit runs after the shutdown timeout" $grace $stop) }}
{{- end }}
{{- if lt (int .Values.shards) 1 }}
{{- fail "shards must be at least 1" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret" }}
{{- end }}
{{- if and .Values.kafka.tls.enabled (not .Values.kafka.tls.existingSecret) }}
{{- fail "kafka.tls.enabled needs kafka.tls.existingSecret" }}
{{- end }}
{{- if and (or .Values.kafka.sasl.enabled .Values.kafka.tls.enabled) (not .Values.kafka.brokers) }}
{{- fail "kafka.sasl or kafka.tls is enabled but kafka.brokers is empty" }}
{{- end }}
{{- if and .Values.backup.enabled (not .Values.backup.destination) }}
{{- fail "backup.enabled needs backup.destination" }}
{{- end }}
{{- if and .Values.definitions.inline .Values.definitions.existingConfigMap }}
{{- fail "set definitions.inline or definitions.existingConfigMap, not both" }}
{{- end }}
{{- range $name, $_ := .Values.flags }}
{{- if has $name (list "data-dir" "http-addr" "grpc-addr" "shards" "shutdown-timeout" "kafka-brokers" "apply" "backup-dest" "backup-interval") }}
{{- fail (printf "flags.%s: the chart sets --%s from its own value (see README.md)" $name $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A flag's value as text. YAML numbers reach templates as float64, which %v
prints as 4.194304e+06: integral ones are printed as integers.
*/}}
{{- define "featured.flagValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* The arguments of `featured serve`, each quoted (broker lists and URLs hold colons). */}}
{{- define "featured.args" -}}
- serve
- {{ printf "--data-dir=%s" (include "featured.dataDir" .) | quote }}
- {{ printf "--http-addr=0.0.0.0:%v" .Values.ports.http | quote }}
- {{ printf "--grpc-addr=0.0.0.0:%v" .Values.ports.grpc | quote }}
- {{ printf "--shards=%v" .Values.shards | quote }}
- {{ printf "--shutdown-timeout=%vs" .Values.shutdownTimeoutSeconds | quote }}
{{- with .Values.kafka.brokers }}
- {{ printf "--kafka-brokers=%s" . | quote }}
{{- end }}
{{- if include "featured.definitionsConfigMap" . }}
- {{ printf "--apply=/etc/featured/definitions/%s" .Values.definitions.key | quote }}
{{- end }}
{{- if .Values.backup.enabled }}
- {{ printf "--backup-dest=%s" .Values.backup.destination | quote }}
- {{ printf "--backup-interval=%s" .Values.backup.interval | quote }}
{{- end }}
{{- range $name := keys .Values.flags | sortAlpha }}
- {{ printf "--%s=%s" $name (include "featured.flagValue" (get $.Values.flags $name)) | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
