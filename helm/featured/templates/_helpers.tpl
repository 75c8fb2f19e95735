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

{{/*
Where the Secrets of the security values are mounted: whole directories, never
subPath, since the kubelet does not update a subPath mount and a rotated token
file or certificate would then need a restart.
*/}}
{{- define "featured.authDir" -}}/etc/featured/auth{{- end }}
{{- define "featured.tlsDir" -}}/etc/featured/tls{{- end }}
{{- define "featured.clientCADir" -}}/etc/featured/client-ca{{- end }}

{{/* The probes' and scrapes' scheme: TLS serves HTTPS only. */}}
{{- define "featured.scheme" -}}
{{- if .Values.tls.existingSecret }}HTTPS{{ else }}HTTP{{ end }}
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
{{- if lt (int .Values.partitions) 1 }}
{{- fail "partitions must be at least 1" }}
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
{{- if not (or .Values.auth.existingSecret .Values.insecure) }}
{{- fail "featured listens on the pod's address: set auth.existingSecret (a Secret with tokens.yaml) or insecure: true" }}
{{- end }}
{{- if and .Values.auth.metricsTokenRequired (not .Values.auth.existingSecret) }}
{{- fail "auth.metricsTokenRequired needs auth.existingSecret: without a token file there is no token to require" }}
{{- end }}
{{- if and .Values.tls.clientCASecret (not .Values.tls.existingSecret) }}
{{- fail "tls.clientCASecret needs tls.existingSecret: client certificates are checked only on TLS" }}
{{- end }}
{{- if .Values.serviceMonitor.enabled }}
{{- if and .Values.auth.metricsTokenRequired (not .Values.serviceMonitor.bearerTokenSecret.name) }}
{{- fail "auth.metricsTokenRequired with serviceMonitor.enabled needs serviceMonitor.bearerTokenSecret.name: Prometheus would be refused" }}
{{- end }}
{{- if and .Values.tls.existingSecret (not .Values.serviceMonitor.tlsConfig.caSecret.name) (not .Values.serviceMonitor.tlsConfig.insecureSkipVerify) }}
{{- fail "tls.existingSecret with serviceMonitor.enabled needs serviceMonitor.tlsConfig.caSecret.name or serviceMonitor.tlsConfig.insecureSkipVerify: true" }}
{{- end }}
{{- end }}
{{- if .Values.cluster.enabled }}
{{- if not .Values.kafka.brokers }}
{{- fail "cluster.enabled needs kafka.brokers: the cluster's membership and pushes go through Kafka" }}
{{- end }}
{{- if le (int .Values.replicaCount) (int .Values.cluster.standbys) }}
{{- fail (printf "cluster.enabled with replicaCount %d and cluster.standbys %d: each partition needs 1 + standbys pods" (int .Values.replicaCount) (int .Values.cluster.standbys)) }}
{{- end }}
{{- end }}
{{- range $name, $_ := .Values.flags }}
{{- if has $name (list "data-dir" "http-addr" "grpc-addr" "partitions" "shards" "shutdown-timeout" "kafka-brokers" "apply" "backup-dest" "backup-interval" "auth-file" "metrics-token-required" "tls-cert" "tls-key" "tls-client-ca" "insecure" "cluster-group" "cluster-instance" "cluster-advertise" "standbys" "max-staleness" "cluster-forward-timeout" "cluster-session-timeout" "checkpoint-dest" "checkpoint-interval" "checkpoint-keep") }}
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
- {{ printf "--partitions=%v" .Values.partitions | quote }}
- {{ printf "--shutdown-timeout=%vs" .Values.shutdownTimeoutSeconds | quote }}
{{- with .Values.kafka.brokers }}
- {{ printf "--kafka-brokers=%s" . | quote }}
{{- end }}
{{- if include "featured.definitionsConfigMap" . }}
- {{ printf "--apply=/etc/featured/definitions/%s" .Values.definitions.key | quote }}
{{- end }}
{{- if .Values.auth.existingSecret }}
- {{ printf "--auth-file=%s/tokens.yaml" (include "featured.authDir" .) | quote }}
{{- if .Values.auth.metricsTokenRequired }}
- "--metrics-token-required=true"
{{- end }}
{{- end }}
{{- if .Values.tls.existingSecret }}
- {{ printf "--tls-cert=%s/tls.crt" (include "featured.tlsDir" .) | quote }}
- {{ printf "--tls-key=%s/tls.key" (include "featured.tlsDir" .) | quote }}
{{- if .Values.tls.clientCASecret }}
- {{ printf "--tls-client-ca=%s/%s" (include "featured.clientCADir" .) .Values.tls.clientCAKey | quote }}
{{- end }}
{{- end }}
{{- if .Values.insecure }}
- "--insecure=true"
{{- end }}
{{- if .Values.backup.enabled }}
- {{ printf "--backup-dest=%s" .Values.backup.destination | quote }}
- {{ printf "--backup-interval=%s" .Values.backup.interval | quote }}
{{- end }}
{{- if .Values.cluster.enabled }}
- {{ printf "--cluster-group=%s" (.Values.cluster.group | default (include "featured.fullname" .)) | quote }}
- "--cluster-instance=$(POD_NAME)"
- {{ printf "--cluster-advertise=$(POD_NAME).%s-headless.%s.svc:%v" (include "featured.fullname" .) .Release.Namespace .Values.ports.grpc | quote }}
- {{ printf "--standbys=%v" .Values.cluster.standbys | quote }}
- {{ printf "--max-staleness=%s" .Values.cluster.maxStaleness | quote }}
- {{ printf "--cluster-forward-timeout=%s" .Values.cluster.forwardTimeout | quote }}
- {{ printf "--cluster-session-timeout=%s" .Values.cluster.sessionTimeout | quote }}
{{- with .Values.cluster.checkpoint.dest }}
- {{ printf "--checkpoint-dest=%s" . | quote }}
- {{ printf "--checkpoint-interval=%s" $.Values.cluster.checkpoint.interval | quote }}
- {{ printf "--checkpoint-keep=%v" $.Values.cluster.checkpoint.keep | quote }}
{{- end }}
{{- end }}
{{- range $name := keys .Values.flags | sortAlpha }}
- {{ printf "--%s=%s" $name (include "featured.flagValue" (get $.Values.flags $name)) | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
