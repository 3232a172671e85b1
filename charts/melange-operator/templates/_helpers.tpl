{{/* Chart name, overridable. */}}
{{- define "melange-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name when it already contains the chart name
(`helm install melange-operator ...` gives the names of deploy/), else <release>-<chart>.
*/}}
{{- define "melange-operator.fullname" -}}
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

{{- define "melange-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment selector is immutable). */}}
{{- define "melange-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "melange-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels of every object the chart renders. */}}
{{- define "melange-operator.labels" -}}
helm.sh/chart: {{ include "melange-operator.chart" . }}
{{ include "melange-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: melange
{{- end }}

{{- define "melange-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "melange-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest]; the tag defaults to the chart appVersion. */}}
{{- define "melange-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The router image: the operator image (digest included) unless router.image overrides a part of it; an
override falls back to the operator repository and tag for the parts it leaves empty.
*/}}
{{- define "melange-operator.routerImage" -}}
{{- $r := .Values.router.image }}
{{- if or $r.repository $r.tag $r.digest }}
{{- $repo := default .Values.image.repository $r.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $r.tag }}
{{- if $r.digest }}
{{- printf "%s:%s@%s" $repo $tag $r.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- else }}
{{- include "melange-operator.image" . }}
{{- end }}
{{- end }}

{{/* Checks the values the JSON schema cannot express. */}}
{{- define "melange-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two active operators would fight over every Deployment" }}
{{- end }}
{{- if and .Values.rbac.create (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.create=false needs serviceAccount.name: the RBAC bindings need a subject" }}
{{- end }}
{{- end }}
