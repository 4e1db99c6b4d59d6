{{/* Labels of one component (the same as `sextant k8s render`). */}}
{{- define "sextant.labels" -}}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Values.name }}
app.kubernetes.io/name: sextant
{{- end }}

{{- define "sextant.metadata" -}}
labels:
  {{- include "sextant.labels" . | nindent 2 }}
name: {{ .name }}
namespace: {{ .root.Values.namespace }}
{{- end }}

{{- define "sextant.serverUrl" -}}
http://{{ .Values.name }}.{{ .Values.namespace }}.svc:5000
{{- end }}

{{/* A hardened container: non-root, read-only root filesystem, resources. */}}
{{- define "sextant.securityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
readOnlyRootFilesystem: true
runAsGroup: 65532
runAsNonRoot: true
runAsUser: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "sextant.resources" -}}
limits:
  memory: {{ .Values.server.resources.memoryLimit }}
requests:
  cpu: {{ .Values.server.resources.cpu | quote }}
  memory: {{ .Values.server.resources.memory }}
{{- end }}

{{- define "sextant.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  fsGroup: 65532
  runAsNonRoot: true
  seccompProfile:
    type: RuntimeDefault
serviceAccountName: {{ .Values.name }}
{{- end }}

{{- define "sextant.scratchVolumes" -}}
- emptyDir: {}
  name: tmp
- emptyDir: {}
  name: cache
{{- end }}

{{- define "sextant.scratchMounts" -}}
- mountPath: /tmp
  name: tmp
- mountPath: /var/cache/sextant
  name: cache
{{- end }}

{{- define "sextant.probe" -}}
failureThreshold: 3
httpGet:
  path: {{ . }}
  port: http
periodSeconds: 5
timeoutSeconds: 2
{{- end }}

{{/* The image: by digest when one is given, else by tag. */}}
{{- define "sextant.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end }}
