{{/*
Shared helpers. Every per-service template loops over .Values.services and asks
"confab.svc" for that service's settings: the entry laid over .Values.defaults.
*/}}

{{/* Deep merge of two maps: (list base override); the override wins, false and
empty values included (sprig's merge functions drop those). Returns YAML. */}}
{{- define "confab.deepMerge" -}}
{{- $base := index . 0 | default dict -}}
{{- $over := index . 1 | default dict -}}
{{- $out := dict -}}
{{- range $k, $v := $base }}{{ $_ := set $out $k $v }}{{ end -}}
{{- range $k, $v := $over -}}
{{- $cur := get $out $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}
{{- $_ := set $out $k (include "confab.deepMerge" (list $cur $v) | fromYaml) -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* One service's effective settings: (list $ name) -> YAML. */}}
{{- define "confab.svc" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $cfg := get $root.Values.services $name | default dict -}}
{{- $svc := include "confab.deepMerge" (list $root.Values.defaults $cfg) | fromYaml -}}
{{- $_ := set $svc "name" $name -}}
{{- $_ := set $svc "fullname" (printf "%s%s" ($root.Values.namePrefix | default "") $name) -}}
{{- $_ := set $svc "envPrefix" ($svc.envPrefix | default (upper $name)) -}}
{{- if not (has $svc.kind (list "http" "grpc")) -}}
{{- fail (printf "services.%s.kind must be http or grpc, not %v" $name $svc.kind) -}}
{{- end -}}
{{- if not $svc.port -}}
{{- fail (printf "services.%s.port is required" $name) -}}
{{- end -}}
{{- if eq $svc.kind "http" -}}
{{- $_ := set $svc "portName" "http" -}}
{{- $_ := set $svc "metricsPortName" "http" -}}
{{- else -}}
{{- if not $svc.metricsPort -}}
{{- fail (printf "services.%s.metricsPort is required for a grpc service" $name) -}}
{{- end -}}
{{- $_ := set $svc "portName" "grpc" -}}
{{- $_ := set $svc "metricsPortName" "metrics" -}}
{{- end -}}
{{- range $peer := $svc.peers | default list -}}
{{- if not (hasKey $root.Values.services $peer) -}}
{{- fail (printf "services.%s.peers names %q, which is not in services" $name $peer) -}}
{{- end -}}
{{- end -}}
{{- toYaml $svc -}}
{{- end -}}

{{/* Names of the enabled services, sorted. */}}
{{- define "confab.enabled" -}}
{{- $out := list -}}
{{- range $name, $cfg := .Values.services -}}
{{- if ne (toString (get $cfg "enabled")) "false" -}}
{{- $out = append $out $name -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "confab.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "confab.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* Selector labels: (list $ svc). Never change them: selectors are immutable. */}}
{{- define "confab.selectorLabels" -}}
{{- $root := index . 0 -}}
{{- $svc := index . 1 -}}
app.kubernetes.io/name: {{ $svc.name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end -}}

{{/* All labels: (list $ svc). */}}
{{- define "confab.labels" -}}
{{- $root := index . 0 -}}
{{- $svc := index . 1 -}}
{{ include "confab.selectorLabels" . }}
app.kubernetes.io/component: {{ $svc.kind }}-service
app.kubernetes.io/part-of: confab
app.kubernetes.io/version: {{ include "confab.imageTag" $root | quote }}
app.kubernetes.io/managed-by: {{ $root.Values.managedBy | default $root.Release.Service }}
helm.sh/chart: {{ include "confab.chart" $root }}
{{- end -}}

{{/* Labels of chart-wide objects (rules, dashboards). */}}
{{- define "confab.commonLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: confab
app.kubernetes.io/version: {{ include "confab.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Values.managedBy | default .Release.Service }}
helm.sh/chart: {{ include "confab.chart" . }}
{{- end -}}

{{/* Prometheus job regex matching every enabled service (ServiceMonitor job = Service name). */}}
{{- define "confab.jobRegex" -}}
{{- $names := list -}}
{{- range $name := include "confab.enabled" . | fromJsonArray -}}
{{- $names = append $names (printf "%s%s" ($.Values.namePrefix | default "") $name) -}}
{{- end -}}
{{- join "|" $names -}}
{{- end -}}

{{/* Data of the shared ConfigMap (also hashed into each pod template). */}}
{{- define "confab.sharedData" -}}
KAFKA_BOOTSTRAP_SERVERS: {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | quote }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .Values.otel.endpoint | quote }}
OTEL_TRACES_EXPORTER: {{ ternary .Values.otel.tracesExporter "none" (.Values.otel.enabled | default false) | quote }}
OTEL_SDK_DISABLED: {{ ternary "false" "true" (.Values.otel.enabled | default false) | quote }}
{{- end -}}
