{{/* The chart's name. */}}
{{- define "mp3c.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name. */}}
{{- define "mp3c.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "mp3c.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "mp3c.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "mp3c.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "mp3c.selectorLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The labels that select the release's objects. */}}
{{- define "mp3c.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mp3c.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels of every mp3converter node (all Deployments): the actor cluster's members. */}}
{{- define "mp3c.nodeSelectorLabels" -}}
{{ include "mp3c.selectorLabels" . }}
app.kubernetes.io/part-of: mp3converter-cluster
{{- end -}}

{{/* The labels of one Deployment's pods; context: dict "root" $ "name" deployment key. */}}
{{- define "mp3c.deploymentSelectorLabels" -}}
{{ include "mp3c.nodeSelectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* The image reference: the digest when given, else the tag (default: appVersion). */}}
{{- define "mp3c.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "mp3c.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mp3c.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding every credential. */}}
{{- define "mp3c.secretName" -}}
{{- default (include "mp3c.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The headless Service over every node: the actor cluster's seed list. */}}
{{- define "mp3c.clusterServiceName" -}}
{{- printf "%s-cluster" (include "mp3c.fullname" .) -}}
{{- end -}}

{{/* Its fully qualified DNS name, which the cluster certificate must carry. */}}
{{- define "mp3c.clusterServiceFqdn" -}}
{{- printf "%s.%s.svc.%s" (include "mp3c.clusterServiceName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* The Secret with the cluster's TLS certificate, key and CA. */}}
{{- define "mp3c.clusterTlsSecret" -}}
{{- default (printf "%s-cluster-tls" (include "mp3c.fullname" .)) .Values.cluster.tls.existingSecret -}}
{{- end -}}

{{/* Whether a Deployment entry carries the converter role; context: the entry. */}}
{{- define "mp3c.isConverter" -}}
{{- if has "converter" .roles }}true{{ end -}}
{{- end -}}

{{/* Whether a Deployment entry carries the gateway role; context: the entry. */}}
{{- define "mp3c.isGateway" -}}
{{- if has "gateway" .roles }}true{{ end -}}
{{- end -}}

{{/* Seconds Kubernetes waits between the pre-stop hook's start and SIGKILL: the pre-stop wait,
the shutdown grace (in-flight conversions finish or are released) and a margin. */}}
{{- define "mp3c.terminationGracePeriodSeconds" -}}
{{- add .Values.lifecycle.preStopSleepSeconds .Values.config.shutdownGraceSeconds .Values.lifecycle.terminationMarginSeconds -}}
{{- end -}}

{{/* The security context of the trial backends' containers. */}}
{{- define "mp3c.trialContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* A trial backend's name; context: dict "root" $ "name" backend. */}}
{{- define "mp3c.trialName" -}}
{{- printf "%s-%s" (include "mp3c.fullname" .root) .name -}}
{{- end -}}

{{/* A trial backend's selector labels; context: dict "root" $ "name" backend. */}}
{{- define "mp3c.trialSelectorLabels" -}}
{{ include "mp3c.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* A Secret value: the value given, else the one the release's Secret already holds, else a
new random one (so an upgrade keeps what the install generated). Context: dict "given" value
"existing" the Secret's data "key" its key "length" of a new one. */}}
{{- define "mp3c.secretValue" -}}
{{- if .given -}}
{{- .given -}}
{{- else if hasKey .existing .key -}}
{{- index .existing .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}
