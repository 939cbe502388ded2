{{/* A trial backend: a Service and a one-replica StatefulSet with a PersistentVolumeClaim, run
as the image's own user (uid 999 in all three images) with a read-only root filesystem and
emptyDirs where the server writes besides its data. Context: dict
  "root" $, "name" backend, "values" its trial values, "ports" list of (dict "name" "port"),
  "dataPath" where the volume goes, "scratch" list of paths for emptyDirs,
  "env" environment as YAML, "mounts" more volumeMounts as YAML, "volumes" more volumes as YAML,
  "args" container args (optional). */}}
{{- define "mp3c.trialBackend" -}}
{{- $root := .root }}
{{- $name := include "mp3c.trialName" (dict "root" $root "name" .name) }}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "mp3c.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  selector:
    {{- include "mp3c.trialSelectorLabels" . | nindent 4 }}
  ports:
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "mp3c.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  serviceName: {{ $name }}
  replicas: 1
  selector:
    matchLabels:
      {{- include "mp3c.trialSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mp3c.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .name }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 999
        runAsGroup: 999
        fsGroup: 999
        {{- /* Not on every start: RabbitMQ refuses an Erlang cookie that the group may read. */}}
        fsGroupChangePolicy: OnRootMismatch
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .name }}
          image: {{ .values.image | quote }}
          imagePullPolicy: IfNotPresent
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            {{- .env | nindent 12 }}
          ports:
            {{- range .ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
          {{- $main := (first .ports).name }}
          startupProbe:
            tcpSocket:
              port: {{ $main }}
            periodSeconds: 5
            failureThreshold: 60
          livenessProbe:
            tcpSocket:
              port: {{ $main }}
            periodSeconds: 20
            timeoutSeconds: 5
          readinessProbe:
            tcpSocket:
              port: {{ $main }}
            periodSeconds: 10
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "mp3c.trialContainerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: {{ .dataPath }}
            {{- range $i, $path := .scratch }}
            - name: {{ printf "scratch-%d" $i }}
              mountPath: {{ $path }}
            {{- end }}
            {{- with .mounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        {{- range $i, $path := .scratch }}
        - name: {{ printf "scratch-%d" $i }}
          emptyDir:
            sizeLimit: 256Mi
        {{- end }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "mp3c.trialSelectorLabels" . | nindent 10 }}
      spec:
        accessModes:
          - ReadWriteOnce
        {{- with $root.Values.trial.storageClass }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ .values.storage }}
{{- end -}}

{{/* An environment variable from the chart's Secret; context: list name key. */}}
{{- define "mp3c.trialSecretEnv" -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "mp3c.fullname" (index . 0) }}
      key: {{ index . 2 }}
{{- end -}}
