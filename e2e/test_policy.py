"""Policy the way operators write it, against real Open WebUI:

- a typo'd model id is refused with the id the gate learned from the
  model lists it forwarded (Open WebUI's own calls through the egress);
- a deny pattern holds at the ingress and, for a client that goes to Open
  WebUI directly, at the egress;
- an organization in shadow mode lets through and counts what it would
  refuse;
- an Open WebUI group bound to an organization grants its members access,
  and removing a member in Open WebUI revokes it.

Each test puts the shared state back as it found it.
"""

import time
import uuid

import pytest
import requests

from conftest import ORG_A, ORG_B, run_modelgate


def mark():
    return uuid.uuid4().hex[:12]


def chat(base, user, model, timeout=30, tag=None):
    return requests.post(
        f"{base}/api/chat/completions", headers=user.auth(), timeout=timeout,
        json={"model": model, "stream": False,
              "messages": [{"role": "user", "content": f"policy [{tag or mark()}]"}]})


def eventually(what, check, timeout=10):
    """Polls `check` until true; returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return time.monotonic() - t0
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def decisions(gate, gate_name, outcome):
    text = requests.get(f"{gate.admin_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("modelgate_decisions_total{") and f'gate="{gate_name}"' in line
               and f'outcome="{outcome}"' in line)


def test_a_typo_is_refused_with_the_model_the_gate_learned(stack, gate, orgs):
    # Open WebUI lists models for an admin through the gate: the ingress
    # learns them, and Open WebUI's own GET /models went through the egress.
    r = requests.get(f"{gate.url}/api/models", headers=stack.admin.auth(), timeout=30)
    assert r.status_code == 200, r.text[:300]

    def learned():
        r = run_modelgate(stack.db, "model", "enable", ORG_B, "gpt-alpah", check=False)
        return r.returncode != 0 and "Did you mean 'gpt-alpha'?" in r.stderr
    eventually("the upstream's model list to be learned", learned)
    # A real id from the same list is accepted without --force, and the
    # organization is left as it was.
    run_modelgate(stack.db, "model", "enable", ORG_B, "gpt-gamma")
    run_modelgate(stack.db, "model", "disable", ORG_B, "gpt-gamma")
    r = run_modelgate(stack.db, "model", "enable", ORG_B, "opnai/*", "--json")
    assert "matches none" in r.stdout, r.stdout
    run_modelgate(stack.db, "model", "disable", ORG_B, "opnai/*")


def test_a_deny_pattern_holds_at_both_gates(stack, gate, orgs):
    assert chat(gate.url, stack.user_a, "gpt-alpha").status_code == 200
    before = decisions(gate, "egress", "denied")
    run_modelgate(stack.db, "model", "deny", ORG_A, "gpt-al*")
    try:
        took = eventually("the deny at the ingress",
                          lambda: chat(gate.url, stack.user_a, "gpt-alpha").status_code == 403)
        assert took <= 3.0, took
        r = chat(gate.url, stack.user_a, "gpt-alpha")
        assert r.json()["error"]["code"] == "model_not_allowed", r.text[:300]
        # Straight to Open WebUI: its call to the model API is refused at
        # the egress and never reaches the model API.
        tag = mark()
        chat(stack.webui_url, stack.user_a, "gpt-alpha", timeout=60, tag=tag)
        assert decisions(gate, "egress", "denied") > before
        assert not [c for c in stack.fake_calls() if tag in (c.get("text") or "")]
    finally:
        run_modelgate(stack.db, "model", "disable", ORG_A, "gpt-al*")
    eventually("the deny lifted", lambda: chat(gate.url, stack.user_a, "gpt-alpha").status_code == 200)


def test_shadow_mode_lets_through_and_counts(stack, gate, orgs):
    # gpt-beta is B's model, not A's.
    assert chat(gate.url, stack.user_a, "gpt-beta").status_code == 403
    before = decisions(gate, "ingress", "would_deny")
    run_modelgate(stack.db, "org", "mode", ORG_A, "shadow")
    try:
        eventually("shadow mode", lambda: chat(gate.url, stack.user_a, "gpt-beta").status_code == 200)
        assert decisions(gate, "ingress", "would_deny") > before
        # The egress lets the call Open WebUI makes through as well.
        assert decisions(gate, "egress", "would_deny") > 0
        # Lists are not filtered by a shadow organization's rules.
        r = requests.get(f"{gate.url}/api/models", headers=stack.user_a.auth(), timeout=30)
        assert "gpt-beta" in {m["id"] for m in r.json()["data"]}
    finally:
        run_modelgate(stack.db, "org", "mode", ORG_A, "enforce")
    eventually("enforced again", lambda: chat(gate.url, stack.user_a, "gpt-beta").status_code == 403)


def test_an_open_webui_group_bound_to_an_organization(stack, gate, orgs):
    admin, b = stack.admin.auth(), stack.user_b
    # B may not use A's model.
    assert chat(gate.url, b, "gpt-alpha").status_code == 403
    r = requests.post(f"{stack.webui_url}/api/v1/groups/create", headers=admin, timeout=30,
                      json={"name": f"sso-{mark()}", "description": "synced from SSO"})
    assert r.status_code == 200, r.text[:300]
    group = r.json()["id"]
    members = f"{stack.webui_url}/api/v1/groups/id/{group}/users"
    run_modelgate(stack.db, "org", "bind-group", ORG_A, group)
    try:
        # Open WebUI adds B to the group (as its SSO sync would).
        r = requests.post(f"{members}/add", headers=admin, json={"user_ids": [b.id]}, timeout=30)
        assert r.status_code == 200, r.text[:300]
        took = eventually("group membership to grant",
                          lambda: chat(gate.url, b, "gpt-alpha").status_code == 200)
        assert took <= 3.0, took
        explained = run_modelgate(stack.db, "access", b.email, "gpt-alpha").stdout
        assert "via group" in explained, explained
        # Removed in Open WebUI: refused again.
        r = requests.post(f"{members}/remove", headers=admin, json={"user_ids": [b.id]}, timeout=30)
        assert r.status_code == 200, r.text[:300]
        took = eventually("group removal to revoke",
                          lambda: chat(gate.url, b, "gpt-alpha").status_code == 403)
        assert took <= 3.0, took
    finally:
        run_modelgate(stack.db, "org", "unbind-group", ORG_A, group)
        requests.delete(f"{stack.webui_url}/api/v1/groups/id/{group}/delete", headers=admin, timeout=30)
    # B keeps B's own model throughout.
    assert chat(gate.url, b, "gpt-beta").status_code == 200
