"""The egress gate holds on its own: clients talk to Open WebUI directly,
bypassing modelgate's ingress, and try to make it call a model outside their
organization through request fields, stored state the server runs later, and
admin-chosen models. Open WebUI's OPENAI_API_BASE_URL is modelgate's egress
listener, so every call it really makes passes the egress check; the fake
upstream records every call it receives, and must never see a forbidden one.

User A (e2e-org-a) may use gpt-alpha only.
"""

import time
import uuid

import pytest
import requests

FORBIDDEN_FOR_A = ("gpt-beta", "gpt-gamma")


def marker():
    return uuid.uuid4().hex[:12]


def runs_model(call, model):
    return call.get("model") == model or model in (call.get("models") or [])


def calls_with(stack, mark):
    return [c for c in stack.fake_calls() if mark in (c.get("text") or "")]


def egress_denials(gate):
    """modelgate_decisions_total{gate="egress",outcome="denied"}, summed."""
    text = requests.get(f"{gate.admin_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("modelgate_decisions_total{") and 'gate="egress"' in line
               and 'outcome="denied"' in line)


def wait_for(what, check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def direct_chat(stack, user, body, timeout=60):
    """A chat call straight to Open WebUI: the ingress never sees it."""
    return requests.post(f"{stack.webui_url}/api/chat/completions", headers=user.auth(),
                         json=body, timeout=timeout)


def refresh_models(stack):
    """Open WebUI resolves presets from its in-memory model list, which a
    model listing refreshes."""
    r = requests.get(f"{stack.webui_url}/api/models", headers=stack.user_a.auth(), timeout=30)
    assert r.status_code == 200, r.text[:300]


def assert_never_called(stack, mark, models=FORBIDDEN_FOR_A):
    bad = [c for c in calls_with(stack, mark) if any(runs_model(c, m) for m in models)]
    assert bad == [], f"forbidden calls reached the upstream: {bad}"


def test_direct_calls_reach_the_upstream_only_for_permitted_models(stack, gate, orgs):
    ok = marker()
    r = direct_chat(stack, stack.user_a, {"model": "gpt-alpha", "stream": False,
                                          "messages": [{"role": "user", "content": f"hi [{ok}]"}]})
    assert r.status_code == 200, r.text[:300]
    assert [c["model"] for c in calls_with(stack, ok)] == ["gpt-alpha"], "the permitted path works"
    for model in FORBIDDEN_FOR_A:
        m = marker()
        r = direct_chat(stack, stack.user_a, {"model": model, "stream": False,
                                              "messages": [{"role": "user", "content": f"hi [{m}]"}]})
        assert r.status_code != 200, f"{model}: {r.status_code} {r.text[:300]}"
        assert "not available for your organization" in r.text, f"refused at egress: {r.text[:300]}"
        assert_never_called(stack, m)


def test_fallback_lists_are_checked_on_both_sides(stack, gate, orgs):
    m = marker()
    body = {"model": "gpt-alpha", "models": ["gpt-gamma"], "route": "fallback", "stream": False,
            "messages": [{"role": "user", "content": f"hi [{m}]"}]}
    # Through the ingress: refused before Open WebUI sees it.
    r = requests.post(f"{gate.url}/api/chat/completions", headers=stack.user_a.auth(), json=body, timeout=60)
    assert r.status_code == 403, r.text[:300]
    assert r.json()["error"]["code"] == "model_not_allowed"
    # Straight to Open WebUI, which forwards `models` upstream: the egress refuses.
    r = direct_chat(stack, stack.user_a, body)
    assert "not available for your organization" in r.text, f"refused at egress: {r.text[:300]}"
    assert_never_called(stack, m, models=("gpt-gamma",))
    assert calls_with(stack, m) == []


def test_a_preset_whose_base_is_swapped_after_the_check(stack, gate, orgs):
    """The admin points a preset user A may use at gpt-alpha, then swaps its
    base to gpt-gamma: Open WebUI resolves the base when it calls, so only
    the egress can see the swap."""
    preset = f"helper-{marker()}"
    admin = stack.admin.auth()
    form = {"id": preset, "name": preset, "base_model_id": "gpt-alpha", "params": {},
            "meta": {"description": "e2e"}, "access_grants": []}
    r = requests.post(f"{stack.webui_url}/api/v1/models/create", headers=admin, json=form, timeout=30)
    assert r.status_code == 200, r.text[:300]
    refresh_models(stack)
    ok = marker()

    def through_ingress(mark):
        return requests.post(f"{gate.url}/api/chat/completions", headers=stack.user_a.auth(), timeout=60,
                             json={"model": preset, "stream": False,
                                   "messages": [{"role": "user", "content": f"hi [{mark}]"}]})

    # The gate learns of the new preset within a second (its change watcher).
    wait_for("the new preset to be usable", lambda: through_ingress(ok).status_code == 200, timeout=10)
    assert {c["model"] for c in calls_with(stack, ok)} == {"gpt-alpha"}

    form["base_model_id"] = "gpt-gamma"
    r = requests.post(f"{stack.webui_url}/api/v1/models/model/update", headers=admin,
                      params={"id": preset}, json=form, timeout=30)
    assert r.status_code == 200, r.text[:300]
    refresh_models(stack)
    # Straight away, before the ingress could know: Open WebUI resolves the
    # new base when it calls, and the egress sees that call.
    m = marker()
    body = {"model": preset, "stream": False, "messages": [{"role": "user", "content": f"hi [{m}]"}]}
    r = direct_chat(stack, stack.user_a, body)
    assert "not available for your organization" in r.text, f"the egress refused it: {r.status_code} {r.text[:300]}"
    assert_never_called(stack, m)
    # The ingress refuses it too once its watcher has seen the change.
    late = marker()
    wait_for("the ingress to see the new base", lambda: through_ingress(late).status_code == 403, timeout=10)
    assert_never_called(stack, late)


def test_an_automation_run_by_the_server(stack, gate, orgs):
    """Written straight to Open WebUI (the ingress never sees it) naming a
    forbidden model, then run: the server makes the call by itself."""
    auth = stack.user_a.auth()

    def create_and_run(model, mark):
        r = requests.post(f"{stack.webui_url}/api/v1/automations/create", headers=auth, timeout=30,
                          json={"name": f"e2e {mark}", "data": {"prompt": f"report [{mark}]", "model_id": model,
                                                                  "rrule": "FREQ=DAILY"}})
        assert r.status_code == 200, r.text[:300]
        aid = r.json()["id"]
        r = requests.post(f"{stack.webui_url}/api/v1/automations/{aid}/run", headers=auth, timeout=30)
        assert r.status_code == 200, r.text[:300]
        return aid

    def finished(aid):
        r = requests.get(f"{stack.webui_url}/api/v1/automations/{aid}/runs", headers=auth, timeout=30)
        return r.status_code == 200 and any(run["status"] not in ("running", "pending") for run in r.json())

    bad = marker()
    bad_id = create_and_run("gpt-gamma", bad)
    ok = marker()
    ok_id = create_and_run("gpt-alpha", ok)
    wait_for("the permitted automation to reach the upstream", lambda: calls_with(stack, ok))
    wait_for("the forbidden automation's run to finish", lambda: finished(bad_id))
    assert finished(ok_id) or calls_with(stack, ok)
    assert_never_called(stack, bad)


def test_an_admin_chosen_task_model(stack, gate, orgs):
    """The admin sets the title model to one user A may not use; a chat of
    user A then makes Open WebUI call it for user A: the egress refuses it
    (the chat itself still answers)."""
    admin = stack.admin.auth()
    r = requests.get(f"{stack.webui_url}/api/v1/tasks/config", headers=admin, timeout=30)
    assert r.status_code == 200, r.text[:300]
    config = r.json()
    config.update({"TASK_MODEL": "gpt-gamma", "TASK_MODEL_EXTERNAL": "gpt-gamma",
                   "ENABLE_TITLE_GENERATION": True})
    r = requests.post(f"{stack.webui_url}/api/v1/tasks/config/update", headers=admin, json=config, timeout=30)
    assert r.status_code == 200, r.text[:300]
    try:
        m = marker()
        before = egress_denials(gate)
        requests.post(f"{stack.webui_url}/api/v1/tasks/title/completions", headers=stack.user_a.auth(),
                      json={"model": "gpt-alpha", "messages": [{"role": "user", "content": f"hi [{m}]"}]},
                      timeout=60)
        assert egress_denials(gate) > before, "Open WebUI called the task model, and the egress refused it"
        assert_never_called(stack, m)
        assert all(c["model"] != "gpt-gamma" for c in stack.fake_calls())
    finally:
        config.update({"TASK_MODEL": "", "TASK_MODEL_EXTERNAL": ""})
        requests.post(f"{stack.webui_url}/api/v1/tasks/config/update", headers=admin, json=config, timeout=30)


def test_no_forbidden_model_ever_reached_the_upstream(stack, gate, orgs):
    """Whatever ran before: gpt-gamma is in no organization."""
    assert [c for c in stack.fake_calls() if runs_model(c, "gpt-gamma")] == []


def test_an_internal_message_stored_in_a_chat_and_run_by_the_server(stack, gate, orgs):
    """User A saves a chat straight to Open WebUI (the ingress never sees it)
    with a pending sub-agent message for a forbidden model, then chats in
    it with a permitted model: after that completion the server runs the
    pending message by itself, for user A, and the egress refuses it."""
    auth = stack.user_a.auth()
    bad, ok = marker(), marker()
    history = {"currentId": "a1", "messages": {
        "u1": {"id": "u1", "role": "user", "content": f"hi [{ok}]", "parentId": None,
               "childrenIds": ["a1"], "models": ["gpt-alpha"]},
        "a1": {"id": "a1", "role": "assistant", "content": "", "parentId": "u1", "childrenIds": ["s1"],
               "model": "gpt-alpha"},
        "s1": {"id": "s1", "role": "user", "content": f"sub-task [{bad}]", "parentId": "a1", "childrenIds": [],
               "model": "gpt-gamma", "meta": {"internal": True, "type": "subagent", "status": "pending"}},
    }}
    r = requests.post(f"{stack.webui_url}/api/v1/chats/new", headers=auth, timeout=30,
                      json={"chat": {"title": "e2e", "models": ["gpt-alpha"], "history": history}})
    assert r.status_code == 200, r.text[:300]
    chat_id = r.json()["id"]
    before = egress_denials(gate)
    r = direct_chat(stack, stack.user_a, {
        "model": "gpt-alpha", "stream": False, "chat_id": chat_id, "id": "a1", "parent_id": "u1",
        "messages": [{"role": "user", "content": f"hi [{ok}]"}]})
    assert r.status_code == 200, r.text[:300]
    wait_for("the permitted completion to reach the upstream", lambda: calls_with(stack, ok))
    # The server picks the pending message up once the chat's task is done.
    wait_for("the server to run the stored message (refused at the egress)",
             lambda: egress_denials(gate) > before)
    assert_never_called(stack, bad)


def test_a_channel_reply_answered_as_the_model_that_wrote_the_parent(stack, gate, orgs):
    """User B asks gpt-beta (B's model) in a channel A is in; user A replies
    to gpt-beta's message. Open WebUI answers a reply as the model that
    wrote the parent, so A would get gpt-beta: refused at the ingress (it
    reads the parent's model from the database) and, when A goes straight
    to Open WebUI, at the egress."""
    b_auth, a_auth = stack.user_b.auth(), stack.user_a.auth()
    r = requests.post(f"{gate.url}/api/v1/channels/create", headers=b_auth, timeout=30,
                      json={"name": f"e2e-{marker()}", "type": "group",
                            "user_ids": [stack.user_a.id]})
    assert r.status_code == 200, r.text[:300]
    channel = r.json()["id"]
    asked = marker()
    r = requests.post(f"{gate.url}/api/v1/channels/{channel}/messages/post", headers=b_auth, timeout=30,
                      json={"content": f"<@M:gpt-beta|beta> hello [{asked}]"})
    assert r.status_code == 200, r.text[:300]
    question = r.json()["id"]

    def model_reply():
        r = requests.get(f"{stack.webui_url}/api/v1/channels/{channel}/messages/{question}/thread",
                         headers=b_auth, timeout=30)
        return r.status_code == 200 and next(
            (m for m in r.json() if (m.get("meta") or {}).get("model_id") == "gpt-beta"), None)

    reply = wait_for("gpt-beta to answer user B in the channel", model_reply)
    # Open WebUI stores the reply (with its model) before it calls the
    # model, so the call may reach the model API a moment later.
    wait_for("B's call to gpt-beta to reach the model API",
             lambda: any(runs_model(c, "gpt-beta") for c in calls_with(stack, asked)))

    # Through the gate, user A sees the thread without B's model...
    r = requests.get(f"{gate.url}/api/v1/channels/{channel}/messages/{question}/thread",
                     headers=a_auth, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert "gpt-beta" not in r.text
    seen = next(m for m in r.json() if m["id"] == reply["id"])
    assert seen["meta"]["model_id"] == "" and seen["meta"]["model_name"] == ""
    r = requests.get(f"{gate.url}/api/v1/channels/{channel}/messages", headers=a_auth, timeout=30)
    assert r.status_code == 200 and "gpt-beta" not in r.text, r.text[:300]

    # ...and may not make it answer.
    m = marker()
    body = {"content": f"and you? [{m}]", "reply_to_id": reply["id"], "parent_id": question}
    r = requests.post(f"{gate.url}/api/v1/channels/{channel}/messages/post", headers=a_auth, json=body,
                      timeout=30)
    assert r.status_code == 403, r.text[:300]
    assert r.json()["error"]["code"] == "model_not_allowed"
    before = egress_denials(gate)
    r = requests.post(f"{stack.webui_url}/api/v1/channels/{channel}/messages/post", headers=a_auth,
                      json=body, timeout=30)
    assert r.status_code == 200, r.text[:300]
    wait_for("Open WebUI to ask gpt-beta for user A (refused at the egress)",
             lambda: egress_denials(gate) > before)
    assert_never_called(stack, m, models=("gpt-beta", "gpt-gamma"))
