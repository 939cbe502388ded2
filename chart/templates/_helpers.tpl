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

{{/* A Deployment's shutdown grace in seconds: its own `shutdownGraceSeconds`, else
config.shutdownGraceSeconds. Context: dict "root" $ "deployment" the entry. */}}
{{- define "mp3c.shutdownGraceSeconds" -}}
{{- $grace := .root.Values.config.shutdownGraceSeconds -}}
{{- if and (hasKey .deployment "shutdownGraceSeconds") (not (kindIs "invalid" .deployment.shutdownGraceSeconds)) -}}
{{- $grace = .deployment.shutdownGraceSeconds -}}
{{- end -}}
{{- int64 $grace -}}
{{- end -}}

{{/* Seconds Kubernetes waits between the pre-stop hook's start and SIGKILL: the pre-stop wait,
the Deployment's shutdown grace (requests and conversions in flight finish, are cut or are
released) and a margin. Context: dict "root" $ "deployment" the entry. */}}
{{- define "mp3c.terminationGracePeriodSeconds" -}}
{{- $lifecycle := .root.Values.lifecycle -}}
{{- add $lifecycle.preStopSleepSeconds (include "mp3c.shutdownGraceSeconds" .) $lifecycle.terminationMarginSeconds -}}
{{- end -}}

{{/* Bytes in a Kubernetes quantity (`4Gi`, `500M`, `1.5Gi`, `1073741824`); context: dict
"value" the quantity "name" the value's name (for the error). */}}
{{- define "mp3c.bytes" -}}
{{- $q := toString .value -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?([KMGTP]i|[kMGTP])?$" $q) -}}
{{- fail (printf "%s: %q is not a size (e.g. 20Gi, 500M or a number of bytes)" .name $q) -}}
{{- end -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 -}}
{{- $number := regexReplaceAll "[A-Za-z]+$" $q "" -}}
{{- $unit := regexReplaceAll "^[0-9.]+" $q "" -}}
{{- printf "%d" (mulf (float64 $number) (index $units $unit) | int64) -}}
{{- end -}}

{{/* Bytes a Deployment's data folder needs: dataVolume.baseSize, and on gateway nodes room for
config.maxConcurrentUploads uploads of config.maxUploadBytes, each spooled whole and then
copied audio-only beside it (a tenth more for the copy of a video). Context: dict "root" $
"deployment" the entry. */}}
{{- define "mp3c.dataBytesNeeded" -}}
{{- $values := .root.Values -}}
{{- $bytes := include "mp3c.bytes" (dict "value" $values.dataVolume.baseSize "name" "dataVolume.baseSize") | int64 -}}
{{- if include "mp3c.isGateway" .deployment -}}
{{- $uploads := mul (int64 $values.config.maxConcurrentUploads) (int64 $values.config.maxUploadBytes) -}}
{{- $bytes = add $bytes (div (mul $uploads 11) 10) -}}
{{- end -}}
{{- printf "%d" $bytes -}}
{{- end -}}

{{/* The size limit of a Deployment's data folder: dataVolume.sizeLimit, which must hold what
the Deployment needs, else that need in bytes. Context: dict "root" $ "deployment" the entry
"name" its key. */}}
{{- define "mp3c.dataSizeLimit" -}}
{{- $needed := include "mp3c.dataBytesNeeded" . | int64 -}}
{{- $values := .root.Values -}}
{{- with $values.dataVolume.sizeLimit -}}
{{- $given := include "mp3c.bytes" (dict "value" . "name" "dataVolume.sizeLimit") | int64 -}}
{{- if and (lt $given $needed) (include "mp3c.isGateway" $.deployment) -}}
{{- fail (printf "dataVolume.sizeLimit %v (%d bytes) is too small for deployments.%s, whose gateway nodes spool uploads there: it needs dataVolume.baseSize %v + config.maxConcurrentUploads %d x config.maxUploadBytes %d x 1.1 = %d bytes, or the pods are evicted by their own uploads. Raise it, lower those, or leave it empty to have it computed" . $given $.name $values.dataVolume.baseSize (int64 $values.config.maxConcurrentUploads) (int64 $values.config.maxUploadBytes) $needed) -}}
{{- else if lt $given $needed -}}
{{- fail (printf "dataVolume.sizeLimit %v is under dataVolume.baseSize %v" . $values.dataVolume.baseSize) -}}
{{- end -}}
{{- . -}}
{{- else -}}
{{- $needed -}}
{{- end -}}
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
