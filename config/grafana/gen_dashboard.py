#!/usr/bin/env python3
"""Generates config/grafana/dashboards/modelgate.json (Grafana 10/11 schema).

    python3 config/grafana/gen_dashboard.py > config/grafana/dashboards/modelgate.json

Edit the panels here rather than the JSON, so the queries stay reviewable.
"""
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
F = '{instance=~"$instance"}'
def sel(extra=""):
    inner = 'instance=~"$instance"' + ("," + extra if extra else "")
    return "{" + inner + "}"
RI = "[$__rate_interval]"
DENIED = sel('outcome="denied"')
FAILED_CLOSED = sel('outcome="error"')
BYPASSED = sel('outcome="bypassed"')
WOULD_DENY = sel('outcome="would_deny"')
BYPASS_MODEL = sel('scope="model_access"')
BYPASS_ADMIN = sel('scope="admin_access"')
RELOAD_FAILED = sel('result="failed"')
panels = []
pid = [0]
def nid():
    pid[0] += 1
    return pid[0]
def row(title, y):
    panels.append({"type": "row", "title": title, "id": nid(), "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
def ts(title, targets, x, y, w=12, h=8, unit="short", desc="", stack=False, legend_calcs=("mean", "max")):
    panels.append({
        "type": "timeseries", "title": title, "id": nid(), "datasource": DS,
        "description": desc,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"fillOpacity": 10, "lineWidth": 1,
                        "showPoints": "never", "stacking": {"mode": "normal" if stack else "none", "group": "A"}}},
                        "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": list(legend_calcs)},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"datasource": DS, "refId": chr(65 + i), "expr": e, "legendFormat": l}
                    for i, (e, l) in enumerate(targets)],
    })
def stat(title, expr, x, y, w=4, h=4, unit="short", desc="", thresholds=None, mappings=None, decimals=None):
    d = {"unit": unit, "thresholds": {"mode": "absolute", "steps": thresholds or [{"color": "green", "value": None}]}}
    if mappings:
        d["mappings"] = mappings
    if decimals is not None:
        d["decimals"] = decimals
    panels.append({
        "type": "stat", "title": title, "id": nid(), "datasource": DS, "description": desc,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": d, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background", "graphMode": "area", "textMode": "auto", "justifyMode": "auto"},
        "targets": [{"datasource": DS, "refId": "A", "expr": expr, "instant": False}],
    })

y = 0
row("Overview", y); y += 1
stat("Enforcement", f"min(modelgate_enforcement_enabled{F})", 0, y,
     desc="1 when modelgate enforces model access; 0 when turned off (ENABLE_MODEL_FILTER=false or BYPASS_MODEL_ACCESS_CONTROL=true).",
     thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
     mappings=[{"type": "value", "options": {"0": {"text": "OFF", "color": "red"}, "1": {"text": "ENFORCED", "color": "green"}}}])
stat("Requests/s", f"sum(rate(modelgate_requests_total{F}{RI}))", 4, y, unit="reqps", decimals=1)
stat("Denied calls/s", f'sum(rate(modelgate_decisions_total{DENIED}{RI})) or vector(0)', 8, y,
     unit="reqps", decimals=2, thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.1}])
stat("Cache hit ratio",
     f"sum(rate(modelgate_cache_hits_total{F}{RI})) / clamp_min(sum(rate(modelgate_cache_hits_total{F}{RI})) + sum(rate(modelgate_cache_misses_total{F}{RI})), 1e-9)",
     12, y, unit="percentunit", decimals=1,
     thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.5}, {"color": "green", "value": 0.8}])
stat("Policy data age", f"max(modelgate_policy_data_age_seconds{F})", 16, y, unit="s",
     desc="Seconds since the access data last changed or was (re)loaded. Large values are normal on a quiet deployment; it drops to ~0 after every membership/model change.",
     thresholds=[{"color": "green", "value": None}])
stat("Upstream errors/s", f"sum(rate(modelgate_upstream_errors_total{F}{RI})) or vector(0)", 20, y, unit="reqps", decimals=2,
     thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.01}])
y += 4
stat("Model access bypass", f'max(modelgate_access_control_bypass{BYPASS_MODEL})', 0, y,
     desc="BYPASS_MODEL_ACCESS_CONTROL: 1 lets every model call through unchecked.",
     thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
     mappings=[{"type": "value", "options": {"0": {"text": "off", "color": "green"}, "1": {"text": "BYPASSED", "color": "red"}}}])
stat("Admin access bypass", f'max(modelgate_access_control_bypass{BYPASS_ADMIN})', 4, y,
     desc="BYPASS_ADMIN_ACCESS_CONTROL: 1 lets Open WebUI administrators use every model.",
     thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
     mappings=[{"type": "value", "options": {"0": {"text": "off", "color": "green"}, "1": {"text": "BYPASSED", "color": "orange"}}}])
stat("Access store", f"min(modelgate_store_up{F})", 8, y,
     desc="1 while the access database reads fine; 0 after the change watcher's last read failed (guarded requests for uncached users fail closed).",
     thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
     mappings=[{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "up", "color": "green"}}}])
stat("Since last good reload", f"time() - max(modelgate_config_last_reload_success_timestamp_seconds{F})", 12, y, unit="s",
     desc="Time since the configuration was last loaded successfully (start-up or SIGHUP).")
stat("Failed reloads (range)", f'sum(increase(modelgate_config_reloads_total{RELOAD_FAILED}[$__range])) or vector(0)', 16, y,
     decimals=0, thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}])
stat("Resident memory", f"max(process_resident_memory_bytes{F})", 20, y, unit="bytes",
     desc="Largest resident set among the selected instances.")
y += 4

row("Traffic", y); y += 1
ts("Request rate by route", [(f"sum by (route) (rate(modelgate_requests_total{F}{RI}))", "{{route}}")], 0, y, unit="reqps", stack=True)
ts("Responses by status", [(f"sum by (status) (rate(modelgate_requests_total{F}{RI}))", "{{status}}")], 12, y, unit="reqps", stack=True)
y += 8
ts("Request latency (p50 / p95 / p99)", [
    (f"histogram_quantile(0.50, sum by (le) (rate(modelgate_request_duration_seconds_bucket{F}{RI})))", "p50"),
    (f"histogram_quantile(0.95, sum by (le) (rate(modelgate_request_duration_seconds_bucket{F}{RI})))", "p95"),
    (f"histogram_quantile(0.99, sum by (le) (rate(modelgate_request_duration_seconds_bucket{F}{RI})))", "p99"),
], 0, y, unit="s", desc="Request head to end of response body; SSE streams count their whole duration.")
ts("p95 latency by route", [
    (f"histogram_quantile(0.95, sum by (le, route) (rate(modelgate_request_duration_seconds_bucket{F}{RI})))", "request {{route}}"),
    (f"histogram_quantile(0.95, sum by (le, route) (rate(modelgate_upstream_duration_seconds_bucket{F}{RI})))", "upstream headers {{route}}"),
], 12, y, unit="s")
y += 8
ts("In flight", [
    (f"sum(modelgate_requests_in_flight{F})", "requests in flight"),
    (f"sum(modelgate_upgraded_connections_active{F})", "WebSocket tunnels"),
], 0, y, legend_calcs=("lastNotNull", "max"))
ts("Upstream errors by kind", [(f"sum by (kind) (rate(modelgate_upstream_errors_total{F}{RI}))", "{{kind}}")], 12, y, unit="reqps")
y += 8

row("Access decisions", y); y += 1
ts("Decisions by outcome", [(f"sum by (outcome) (rate(modelgate_decisions_total{F}{RI}))", "{{outcome}}")], 0, y, unit="reqps", stack=True)
ts("Denials by organization (top 10)", [(f'topk(10, sum by (organization) (rate(modelgate_decisions_total{DENIED}{RI})))', "{{organization}}")], 12, y, unit="reqps")
y += 8
ts("Decision latency p99 by outcome", [
    (f"histogram_quantile(0.99, sum by (le, outcome) (rate(modelgate_decision_duration_seconds_bucket{F}{RI})))", "{{outcome}}"),
], 0, y, unit="s", desc="Cache hits are microseconds; misses query SQLite.")
ts("Model lists filtered", [
    (f"sum by (shape) (rate(modelgate_model_lists_rewritten_total{F}{RI}))", "lists {{shape}}"),
    (f"sum by (shape) (rate(modelgate_model_list_entries_removed_total{F}{RI}))", "entries removed {{shape}}"),
], 12, y, unit="ops")
y += 8

row("Access data and configuration", y); y += 1
ts("Cache hit ratio", [
    (f"sum(rate(modelgate_cache_hits_total{F}{RI})) / clamp_min(sum(rate(modelgate_cache_hits_total{F}{RI})) + sum(rate(modelgate_cache_misses_total{F}{RI})), 1e-9)", "hit ratio"),
], 0, y, w=8, unit="percentunit")
ts("Cache entries", [(f"sum by (instance) (modelgate_cache_entries{F})", "{{instance}}")], 8, y, w=8, legend_calcs=("lastNotNull",))
ts("Policy data age", [(f"modelgate_policy_data_age_seconds{F}", "{{instance}}")], 16, y, w=8, unit="s", legend_calcs=("lastNotNull", "max"))
y += 8
y += 8

row("Access store", y); y += 1
ts("Store up", [(f"modelgate_store_up{F}", "{{instance}}")], 0, y, w=8, legend_calcs=("min", "lastNotNull"),
   desc="0 when the change watcher cannot read the access database: revocations go unnoticed and uncached users are refused.")
ts("Store errors by kind", [
    (f"sum by (kind) (rate(modelgate_store_errors_total{F}{RI}))", "{{kind}}"),
    (f'sum(rate(modelgate_decisions_total{FAILED_CLOSED}{RI}))', "decisions failed closed"),
], 8, y, w=8, unit="ops")
ts("Store query latency", [
    (f"histogram_quantile(0.50, sum by (le) (rate(modelgate_store_query_duration_seconds_bucket{F}{RI})))", "p50"),
    (f"histogram_quantile(0.99, sum by (le) (rate(modelgate_store_query_duration_seconds_bucket{F}{RI})))", "p99"),
    (f"sum(rate(modelgate_store_query_duration_seconds_sum{F}{RI})) / clamp_min(sum(rate(modelgate_store_query_duration_seconds_count{F}{RI})), 1e-9)", "mean"),
], 16, y, w=8, unit="s")
y += 8
ts("Change watcher polls", [(f"sum by (instance) (rate(modelgate_policy_watch_polls_total{F}{RI}))", "{{instance}}")], 0, y, w=8, unit="ops",
   desc="Flat at 0 means changes to memberships and models are no longer noticed (alert ModelgatePolicyDataStale).")
ts("Cache invalidations and evictions", [
    (f"sum(rate(modelgate_policy_invalidations_total{F}{RI}))", "invalidations (data changed)"),
    (f"sum(rate(modelgate_cache_evictions_total{F}{RI}))", "evictions (size/TTL)"),
], 8, y, w=8, unit="ops")
ts("Policy data version", [(f"modelgate_policy_data_version{F}", "{{instance}}")], 16, y, w=8, legend_calcs=("lastNotNull",))
y += 8

row("Enforcement, bypass and reloads", y); y += 1
ts("Enforcement enabled", [(f"modelgate_enforcement_enabled{F}", "{{instance}}")], 0, y, w=8, legend_calcs=("min",))
ts("Access-control bypass", [(f"max by (scope) (modelgate_access_control_bypass{F})", "{{scope}}")], 8, y, w=8, legend_calcs=("max",),
   desc="1 while BYPASS_MODEL_ACCESS_CONTROL (model_access) or BYPASS_ADMIN_ACCESS_CONTROL (admin_access) is on.")
ts("Bypassed decisions", [(f'sum by (gate) (rate(modelgate_decisions_total{BYPASSED}{RI}))', "{{gate}}")], 16, y, w=8, unit="reqps",
   desc="Model calls let through unchecked because enforcement is bypassed.")
y += 8
ts("Would deny (shadow mode)", [(f'sum by (organization) (rate(modelgate_decisions_total{WOULD_DENY}{RI}))', "{{organization}}")], 0, y, w=8, unit="reqps",
   desc="Calls an organization in shadow mode would refuse, let through. Watch it before `org mode ORG enforce`: what shows here is what enforcing would refuse.")
ts("Config reloads", [(f"sum by (result) (increase(modelgate_config_reloads_total{F}[$__range]))", "{{result}}")], 8, y, w=8, legend_calcs=("lastNotNull",))
ts("Last successful config load", [(f"modelgate_config_last_reload_success_timestamp_seconds{F} * 1000", "{{instance}}")], 16, y, w=8,
   unit="dateTimeAsIso", legend_calcs=("lastNotNull",))
y += 8

row("Process", y); y += 1
ts("Memory", [
    (f"process_resident_memory_bytes{F}", "resident {{instance}}"),
    (f"process_virtual_memory_bytes{F}", "virtual {{instance}}"),
], 0, y, w=8, unit="bytes", legend_calcs=("lastNotNull", "max"))
ts("CPU", [(f"rate(process_cpu_seconds_total{F}{RI})", "{{instance}}")], 8, y, w=8, unit="percentunit",
   desc="CPU seconds per second (1 = one core).")
ts("File descriptors", [
    (f"process_open_fds{F}", "open {{instance}}"),
    (f"process_max_fds{F}", "limit {{instance}}"),
], 16, y, w=8, legend_calcs=("lastNotNull", "max"))

dash = {
    "uid": "modelgate",
    "title": "modelgate",
    "description": "Model-access gateway in front of Open WebUI: traffic, access decisions, cache and policy freshness, the access store, enforcement bypass and reloads, the process.",
    "tags": ["modelgate", "open-webui"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
         "current": {"selected": False, "text": "Prometheus", "value": "prometheus"}, "hide": 0},
        {"name": "instance", "type": "query", "label": "Instance", "datasource": DS,
         "query": {"query": "label_values(modelgate_build_info, instance)", "refId": "instance"},
         "definition": "label_values(modelgate_build_info, instance)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
print(json.dumps(dash, indent=2))
