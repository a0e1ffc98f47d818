{{- define "jetbox.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jetbox.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "jetbox.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jetbox.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
jetbox.validate stops rendering on values that would deploy something
broken: more workers than partitions (the extra ones own nothing),
autoscaling from zero (nobody would report the backlog), secrets in the
ConfigMap.
*/}}
{{- define "jetbox.validate" -}}
{{- $p := int .Values.partitions -}}
{{- if lt $p 1 -}}
{{- fail (printf "partitions = %d: at least 1" $p) -}}
{{- end -}}
{{- if gt (int .Values.replicas) $p -}}
{{- fail (printf "replicas = %d is above partitions = %d: a partition has one owner at a time, so workers beyond the partition count own nothing" (int .Values.replicas) $p) -}}
{{- end -}}
{{- if .Values.autoscaling.enabled -}}
{{- if gt (int .Values.autoscaling.maxReplicas) $p -}}
{{- fail (printf "autoscaling.maxReplicas = %d is above partitions = %d: a partition has one owner at a time, so workers beyond the partition count own nothing" (int .Values.autoscaling.maxReplicas) $p) -}}
{{- end -}}
{{- if lt (int .Values.autoscaling.minReplicas) 1 -}}
{{- fail "autoscaling.minReplicas must be at least 1: the workers export the backlog the scaler reads, so with none running it would never scale up" -}}
{{- end -}}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) -}}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := .Values.config -}}
{{- if has $k (list "SOMABRAIN_MEMORY_HTTP_TOKEN" "NATS_PASSWORD" "NATS_TOKEN" "NATS_USER" "SOMABRAIN_POSTGRES_DSN" "SOMABRAIN_OUTBOX_INGEST_TOKEN") -}}
{{- fail (printf "config.%s: a secret does not go in the ConfigMap; use the secrets values, which reference an existing Secret" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment every jetbox container gets: the ConfigMap, then the secrets by reference. */}}
{{- define "jetbox.env" -}}
- name: SOMABRAIN_OUTBOX_PARTITIONS
  value: {{ .Values.partitions | quote }}
{{- with .Values.secrets.memoryToken }}
{{- if .name }}
- name: SOMABRAIN_MEMORY_HTTP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- with .Values.secrets.natsPassword }}
{{- if .name }}
- name: NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .userKey }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- if .Values.secrets.natsCreds.name }}
- name: NATS_CREDS
  value: /etc/jetbox/nats/{{ .Values.secrets.natsCreds.key }}
{{- end }}
{{- end -}}

{{- define "jetbox.volumeMounts" -}}
- name: data
  mountPath: /data
{{- if .Values.secrets.natsCreds.name }}
- name: nats-creds
  mountPath: /etc/jetbox/nats
  readOnly: true
{{- end }}
{{- end -}}

{{- define "jetbox.volumes" -}}
- name: data
  emptyDir: {}
{{- if .Values.secrets.natsCreds.name }}
- name: nats-creds
  secret:
    secretName: {{ .Values.secrets.natsCreds.name }}
    items:
      - key: {{ .Values.secrets.natsCreds.key }}
        path: {{ .Values.secrets.natsCreds.key }}
{{- end }}
{{- end -}}
