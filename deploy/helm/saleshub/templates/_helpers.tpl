{{/* Names and labels. */}}
{{- define "saleshub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "saleshub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "saleshub.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "saleshub.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "saleshub.version" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "saleshub.ddEnv" -}}
{{- default (default "" .Values.settings.telemetry.env) .Values.datadog.env -}}
{{- end -}}

{{- define "saleshub.ddVersion" -}}
{{- default (include "saleshub.version" .) .Values.datadog.version -}}
{{- end -}}

{{- define "saleshub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "saleshub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object; with Datadog, the unified service tags too. */}}
{{- define "saleshub.labels" -}}
{{ include "saleshub.selectorLabels" . }}
app.kubernetes.io/version: {{ include "saleshub.version" .root | quote }}
app.kubernetes.io/part-of: saleshub
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- if .root.Values.datadog.enabled }}
tags.datadoghq.com/service: {{ .root.Values.datadog.service | quote }}
tags.datadoghq.com/version: {{ include "saleshub.ddVersion" .root | quote }}
{{- with include "saleshub.ddEnv" .root }}
tags.datadoghq.com/env: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "saleshub.serviceAccountName" -}}
{{- default (include "saleshub.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "saleshub.migrationServiceAccountName" -}}
{{- default (printf "%s-migration" (include "saleshub.fullname" .)) .Values.migration.serviceAccount.name -}}
{{- end -}}

{{- define "saleshub.image" -}}
{{ printf "%s:%s" .Values.image.repository (include "saleshub.version" .) }}
{{- end -}}

{{/*
The hub's settings as SALESHUB_* variables: a group's field is SALESHUB_<GROUP>__<FIELD>, a top-level
field SALESHUB_<FIELD>; null is left out (the hub's default), maps and lists are JSON. Takes
{"settings": <settings>, "root": $}.
*/}}
{{- define "saleshub.settingsEnv" -}}
{{- $settings := .settings -}}
{{- if not (($settings.database | default dict).url) }}
{{- fail "settings.database.url is required: every role of the release shares one PostgreSQL (without it each pod would start an embedded one of its own)" }}
{{- end }}
{{- if (($settings.database | default dict).url) }}
{{- if regexMatch "://[^/@]*:[^/@]*@" (toString $settings.database.url) }}
{{- fail "settings.database.url holds a password: give the host and database only; the credentials come from the secret store (database/credentials, or Vault's database engine)" }}
{{- end }}
{{- end }}
{{- if eq (toString (($settings.privacy | default dict).keys)) "vault" }}
{{- if ne (toString (($settings.secrets | default dict).backend)) "vault" }}
{{- fail "settings.privacy.keys is vault, but settings.secrets.backend is not: the transit key is used through the Vault session of the secret store, so set settings.secrets.backend to vault" }}
{{- end }}
{{- end }}
{{- range $name := list "vault_token" "vault_secret_id" }}
{{- if hasKey ($settings.secrets | default dict) $name }}{{ if index $settings.secrets $name }}
{{- fail (printf "settings.secrets.%s is a secret: set SALESHUB_SECRETS__%s through secretEnv (a Kubernetes Secret), never as a value" $name (upper $name)) }}
{{- end }}{{ end }}
{{- end }}
{{- range $key := list "client_config" "consumer_config" }}
{{- range $property, $_ := (index ($settings.kafka | default dict) $key | default dict) }}
{{- if regexMatch "(?i)(password|secret)" $property }}
{{- fail (printf "settings.kafka.%s.%s is a credential: it comes from the secret kafka/sasl" $key $property) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $group, $fields := $settings }}
{{- if kindIs "map" $fields }}
{{- range $field, $value := $fields }}
{{- if not (kindIs "invalid" $value) }}
{{- if not (and (kindIs "map" $value) (empty $value)) }}
- name: {{ printf "SALESHUB_%s__%s" (upper $group) (upper $field) }}
  value: {{ if or (kindIs "map" $value) (kindIs "slice" $value) }}{{ toJson $value | quote }}{{ else }}{{ include "saleshub.scalar" $value | quote }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- else if not (kindIs "invalid" $fields) }}
- name: {{ printf "SALESHUB_%s" (upper $group) }}
  value: {{ include "saleshub.scalar" $fields | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A scalar setting as text; a whole number stays whole after a trip through JSON (fromJson). */}}
{{- define "saleshub.scalar" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* Everything a hub container needs in its environment. Takes {"settings", "secretEnv", "root"}. */}}
{{- define "saleshub.env" -}}
{{- $root := .root -}}
{{- if $root.Values.datadog.enabled }}
- name: DD_AGENT_HOST
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
- name: DD_SERVICE
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['tags.datadoghq.com/service']
- name: DD_VERSION
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['tags.datadoghq.com/version']
{{- if include "saleshub.ddEnv" $root }}
- name: DD_ENV
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['tags.datadoghq.com/env']
{{- end }}
{{- if not .settings.telemetry.statsd_host }}
- name: SALESHUB_TELEMETRY__STATSD_HOST
  value: "$(DD_AGENT_HOST)"
{{- end }}
{{- end }}
{{- include "saleshub.settingsEnv" (dict "settings" .settings "root" $root) }}
{{- range .secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "saleshub.envFrom" -}}
{{- range .Values.secretEnvFrom }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{/* The declared writable paths of the image, and any extra volumes. */}}
{{- define "saleshub.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataSizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "saleshub.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.settings.database.data_dir | default "/var/lib/saleshub" }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level scheduling and security shared by every workload. */}}
{{- define "saleshub.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
securityContext:
{{ toYaml .Values.podSecurityContext | indent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{ toYaml . }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/*
A CronJob running one saleshub command. Takes {"root", "component", "schedule", "args",
"serviceAccount", "settings", "secretEnv", "resources", "activeDeadlineSeconds"}.
*/}}
{{- define "saleshub.cronjob" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component }}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "saleshub.fullname" $root }}-{{ .component }}
  labels:
{{ include "saleshub.labels" $ctx | indent 4 }}
spec:
  schedule: {{ .schedule | quote }}
  timeZone: {{ $root.Values.cronTimeZone | quote }}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3600
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 0
      activeDeadlineSeconds: {{ .activeDeadlineSeconds }}
      template:
        metadata:
          labels:
{{ include "saleshub.labels" $ctx | indent 12 }}
        spec:
          restartPolicy: Never
          serviceAccountName: {{ .serviceAccount }}
          automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
{{ include "saleshub.podCommon" $root | indent 10 }}
          containers:
            - name: {{ .component }}
              image: {{ include "saleshub.image" $root }}
              imagePullPolicy: {{ $root.Values.image.pullPolicy }}
              args:
{{- range .args }}
                - {{ . | quote }}
{{- end }}
              env:
{{ include "saleshub.env" (dict "settings" .settings "secretEnv" .secretEnv "root" $root) | indent 16 }}
              {{- with .envFrom }}
              envFrom:
{{ . | indent 16 }}
              {{- end }}
              resources:
{{ toYaml .resources | indent 16 }}
              securityContext:
{{ toYaml $root.Values.securityContext | indent 16 }}
              volumeMounts:
{{ include "saleshub.volumeMounts" $root | indent 16 }}
          volumes:
{{ include "saleshub.volumes" $root | indent 12 }}
{{- end -}}

{{/*
The owner's settings (the migration and the partitions CronJob): `settings` with
`migration.settings` laid over it key by key; a null there unsets the runtime's value (e.g. its
vault_database_role). As JSON, for fromJson.
*/}}
{{- define "saleshub.ownerSettings" -}}
{{- $settings := deepCopy .Values.settings -}}
{{- range $group, $fields := .Values.migration.settings }}
{{- if kindIs "map" $fields }}
{{- $target := index $settings $group | default dict }}
{{- range $field, $value := $fields }}
{{- $_ := set $target $field $value }}
{{- end }}
{{- $_ := set $settings $group $target }}
{{- else }}
{{- $_ := set $settings $group $fields }}
{{- end }}
{{- end }}
{{- toJson $settings -}}
{{- end -}}
