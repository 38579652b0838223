"""Responses that are not model lists but name models: through the gate,
user A (gpt-alpha only) never sees gpt-beta or gpt-gamma in them, while
Open WebUI itself (asked directly) does show them, so each check has
something to hide.
"""

import json
import time
import uuid

import requests
import socketio

FORBIDDEN_FOR_A = ("gpt-beta", "gpt-gamma")


def visible(text):
    return [m for m in FORBIDDEN_FOR_A if m in text]


def test_app_and_task_config(stack, gate, orgs):
    admin = stack.admin.auth()
    r = requests.get(f"{stack.webui_url}/api/v1/configs/models", headers=admin, timeout=30)
    assert r.status_code == 200, r.text[:300]
    models_config = r.json()
    r = requests.get(f"{stack.webui_url}/api/v1/tasks/config", headers=admin, timeout=30)
    assert r.status_code == 200, r.text[:300]
    task_config = r.json()
    try:
        r = requests.post(f"{stack.webui_url}/api/v1/configs/models", headers=admin, timeout=30,
                          json={**models_config, "DEFAULT_MODELS": "gpt-beta,gpt-alpha",
                                "DEFAULT_PINNED_MODELS": "gpt-gamma"})
        assert r.status_code == 200, r.text[:300]
        r = requests.post(f"{stack.webui_url}/api/v1/tasks/config/update", headers=admin, timeout=30,
                          json={**task_config, "TASK_MODEL": "gpt-beta", "TASK_MODEL_EXTERNAL": "gpt-alpha"})
        assert r.status_code == 200, r.text[:300]
        a = stack.user_a.auth()
        direct = requests.get(f"{stack.webui_url}/api/config", headers=a, timeout=30).json()
        assert direct["default_models"] == "gpt-beta,gpt-alpha", direct
        r = requests.get(f"{gate.url}/api/config", headers=a, timeout=30)
        assert r.status_code == 200, r.text[:300]
        assert r.json()["default_models"] == "gpt-alpha"
        assert r.json()["default_pinned_models"] == ""
        assert visible(r.text) == []
        r = requests.get(f"{gate.url}/api/v1/tasks/config", headers=a, timeout=30)
        assert r.status_code == 200, r.text[:300]
        assert (r.json()["TASK_MODEL"], r.json()["TASK_MODEL_EXTERNAL"]) == ("", "gpt-alpha")
    finally:
        requests.post(f"{stack.webui_url}/api/v1/configs/models", headers=admin, json=models_config, timeout=30)
        requests.post(f"{stack.webui_url}/api/v1/tasks/config/update", headers=admin, json=task_config,
                      timeout=30)


def test_models_in_use(stack, gate, orgs):
    """`/api/usage` lists the models anyone's browser reports using."""
    client = socketio.Client(reconnection=False)
    client.connect(stack.webui_url, socketio_path="/ws/socket.io", transports=["websocket"],
                   auth={"token": stack.user_b.token}, wait_timeout=30)
    try:
        client.emit("usage", {"model": "gpt-beta"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            direct = requests.get(f"{stack.webui_url}/api/usage", headers=stack.user_a.auth(), timeout=30)
            assert direct.status_code == 200, direct.text[:300]
            if "gpt-beta" in direct.json()["model_ids"]:
                break
            time.sleep(0.2)
        assert "gpt-beta" in direct.json()["model_ids"], direct.text
        r = requests.get(f"{gate.url}/api/usage", headers=stack.user_a.auth(), timeout=30)
        assert r.status_code == 200, r.text[:300]
        assert visible(r.text) == [], r.text
        r = requests.get(f"{gate.url}/api/usage", headers=stack.user_b.auth(), timeout=30)
        assert "gpt-beta" in r.json()["model_ids"], "user B may see their own model"
    finally:
        client.disconnect()


def test_a_shared_chat(stack, gate, orgs):
    """The admin shares a chat that used every model with user A, and
    opens it to anyone: user A and a visitor read it without the models."""
    admin = stack.admin.auth()
    history = {"currentId": "a2", "messages": {
        "u1": {"id": "u1", "role": "user", "content": "compare", "parentId": None,
               "childrenIds": ["a1", "a2"], "models": ["gpt-alpha", "gpt-beta"]},
        "a1": {"id": "a1", "role": "assistant", "content": "alpha here", "parentId": "u1",
               "childrenIds": [], "model": "gpt-alpha", "modelName": "gpt-alpha", "modelIdx": 0},
        "a2": {"id": "a2", "role": "assistant", "content": "beta here", "parentId": "u1",
               "childrenIds": [], "model": "gpt-beta", "modelName": "gpt-beta", "modelIdx": 1},
    }}
    r = requests.post(f"{stack.webui_url}/api/v1/chats/new", headers=admin, timeout=30,
                      json={"chat": {"title": f"shared {uuid.uuid4().hex[:8]}",
                                     "models": ["gpt-alpha", "gpt-beta", "gpt-gamma"], "history": history}})
    assert r.status_code == 200, r.text[:300]
    chat_id = r.json()["id"]
    r = requests.post(f"{stack.webui_url}/api/v1/chats/{chat_id}/share", headers=admin, timeout=30)
    assert r.status_code == 200, r.text[:300]
    share_id = r.json()["share_id"]
    grants = [{"principal_type": "user", "principal_id": stack.user_a.id, "permission": "read"},
              {"principal_type": "anyone", "principal_id": "*", "permission": "read"}]
    r = requests.post(f"{stack.webui_url}/api/v1/chats/shared/{chat_id}/access/update", headers=admin,
                      json={"access_grants": grants}, timeout=30)
    assert r.status_code == 200, r.text[:300]

    a = stack.user_a.auth()
    direct = requests.get(f"{stack.webui_url}/api/v1/chats/share/{share_id}", headers=a, timeout=30)
    assert direct.status_code == 200 and "gpt-beta" in direct.text, direct.text[:300]

    def check(r, allowed):
        assert r.status_code == 200, r.text[:300]
        assert visible(r.text) == [], r.text[:500]
        chat = r.json()["chat"]
        assert chat["models"] == allowed
        messages = chat["history"]["messages"]
        assert messages["a2"]["model"] == "" and messages["a2"]["content"] == "beta here"
        assert messages["a1"]["model"] == ("gpt-alpha" if allowed else "")

    check(requests.get(f"{gate.url}/api/v1/chats/share/{share_id}", headers=a, timeout=30), ["gpt-alpha"])
    check(requests.get(f"{gate.url}/api/v1/chats/share/{share_id}", timeout=30), [])
    # A clone becomes user A's own chat: redacted when cloned and when read.
    r = requests.post(f"{gate.url}/api/v1/chats/{share_id}/clone/shared", headers=a, timeout=30)
    check(r, ["gpt-alpha"])
    clone = r.json()["id"]
    check(requests.get(f"{gate.url}/api/v1/chats/{clone}", headers=a, timeout=30), ["gpt-alpha"])
    # The clone is stored whole: user A's export and usage statistics carry
    # it, and are redacted too (the export line by line as it streams).
    # (Other tests leave user A chats whose text quotes a refusal naming a
    # model: free text, the author's own; the clone's line is what counts.)
    def lines(text):
        return {c["id"]: c for c in map(json.loads, filter(str.strip, text.splitlines()))}

    direct = requests.get(f"{stack.webui_url}/api/v1/chats/all", headers=a, timeout=30)
    assert direct.status_code == 200, direct.text[:300]
    assert "gpt-beta" in json.dumps(lines(direct.text)[clone]), "the export holds the clone whole"
    r = requests.get(f"{gate.url}/api/v1/chats/all", headers=a, timeout=30)
    assert r.status_code == 200, r.text[:300]
    exported = lines(r.text)
    assert exported.keys() == lines(direct.text).keys(), "every chat is exported"
    assert visible(json.dumps(exported[clone])) == [], exported[clone]
    assert exported[clone]["chat"]["models"] == ["gpt-alpha"]
    r = requests.get(f"{gate.url}/api/v1/users/usage", headers=a, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert visible(r.text) == [], r.text[:500]


def test_a_shared_folder_and_its_chats(stack, gate, orgs):
    """The admin shares a folder (default models: gpt-beta) with user A and
    files a gpt-beta chat in it: user A reads both without the model."""
    admin, a = stack.admin.auth(), stack.user_a.auth()
    r = requests.post(f"{stack.webui_url}/api/v1/folders/", headers=admin, timeout=30,
                      json={"name": f"team {uuid.uuid4().hex[:8]}", "data": {"model_ids": ["gpt-beta"]}})
    assert r.status_code == 200, r.text[:300]
    folder = r.json()["id"]
    r = requests.post(f"{stack.webui_url}/api/v1/folders/{folder}/access/update", headers=admin, timeout=30,
                      json={"access_grants": [{"principal_type": "user", "principal_id": stack.user_a.id,
                                               "permission": "read"}]})
    assert r.status_code == 200, r.text[:300]
    r = requests.post(f"{stack.webui_url}/api/v1/chats/new", headers=admin, timeout=30,
                      json={"chat": {"title": "team chat", "models": ["gpt-beta"], "history": {
                          "currentId": "a1", "messages": {"a1": {"id": "a1", "role": "assistant",
                                                                 "model": "gpt-beta", "content": "hi"}}}}})
    assert r.status_code == 200, r.text[:300]
    chat = r.json()["id"]
    r = requests.post(f"{stack.webui_url}/api/v1/chats/{chat}/folder", headers=admin, timeout=30,
                      json={"folder_id": folder})
    assert r.status_code == 200, r.text[:300]

    direct = requests.get(f"{stack.webui_url}/api/v1/chats/{chat}", headers=a, timeout=30)
    assert direct.status_code == 200 and "gpt-beta" in direct.text, direct.text[:300]
    r = requests.get(f"{gate.url}/api/v1/chats/{chat}", headers=a, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert visible(r.text) == [] and r.json()["chat"]["history"]["messages"]["a1"]["content"] == "hi"
    for path in ("/api/v1/folders/shared", f"/api/v1/folders/{folder}"):
        direct = requests.get(f"{stack.webui_url}{path}", headers=a, timeout=30)
        assert direct.status_code == 200 and "gpt-beta" in direct.text, f"{path}: {direct.text[:300]}"
        r = requests.get(f"{gate.url}{path}", headers=a, timeout=30)
        assert r.status_code == 200 and visible(r.text) == [], f"{path}: {r.text[:300]}"


def test_groups_and_settings_with_admin_chosen_models(stack, gate, orgs):
    admin, a = stack.admin.auth(), stack.user_a.auth()
    r = requests.post(f"{stack.webui_url}/api/v1/groups/create", headers=admin, timeout=30,
                      json={"name": f"g {uuid.uuid4().hex[:8]}", "description": "e2e",
                            "data": {"config": {"default_models": ["gpt-beta", "gpt-alpha"]}}})
    assert r.status_code == 200, r.text[:300]
    group = r.json()["id"]
    r = requests.post(f"{stack.webui_url}/api/v1/groups/id/{group}/users/add", headers=admin, timeout=30,
                      json={"user_ids": [stack.user_a.id]})
    assert r.status_code == 200, r.text[:300]
    try:
        for path in ("/api/v1/groups/", "/api/v1/users/groups"):
            direct = requests.get(f"{stack.webui_url}{path}", headers=a, timeout=30)
            assert direct.status_code == 200 and "gpt-beta" in direct.text, f"{path}: {direct.text[:300]}"
            r = requests.get(f"{gate.url}{path}", headers=a, timeout=30)
            assert r.status_code == 200, r.text[:300]
            assert visible(r.text) == [] and "gpt-alpha" in r.text, f"{path}: {r.text[:300]}"
    finally:
        requests.delete(f"{stack.webui_url}/api/v1/groups/id/{group}/delete", headers=admin, timeout=30)


def test_live_channel_events(stack, gate, orgs):
    """Open WebUI pushes channel messages over Socket.IO as they are written:
    user A, connected through the gate, gets gpt-beta's reply to user B
    without the model; connected straight to Open WebUI, with it."""
    b_auth = stack.user_b.auth()
    r = requests.post(f"{gate.url}/api/v1/channels/create", headers=b_auth, timeout=30,
                      json={"name": f"live-{uuid.uuid4().hex[:8]}", "type": "group",
                            "user_ids": [stack.user_a.id]})
    assert r.status_code == 200, r.text[:300]
    channel = r.json()["id"]

    def listen(base):
        events = []
        client = socketio.Client(reconnection=False)
        client.on("events:channel", lambda data: events.append(data))
        client.connect(base, socketio_path="/ws/socket.io", transports=["websocket"],
                       headers=stack.user_a.auth(), auth={"token": stack.user_a.token}, wait_timeout=30)
        client.call("user-join", {"auth": {"token": stack.user_a.token}}, timeout=30)
        return client, events

    through_gate, seen = listen(gate.url)
    direct, control = listen(stack.webui_url)
    try:
        r = requests.post(f"{gate.url}/api/v1/channels/{channel}/messages/post", headers=b_auth, timeout=30,
                          json={"content": "<@M:gpt-beta|beta> hello"})
        assert r.status_code == 200, r.text[:300]

        def replied(events):
            return [e for e in events if e.get("channel_id") == channel
                    and (((e.get("data") or {}).get("data") or {}).get("meta") or {}).get("done")]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (replied(seen) and replied(control)):
            time.sleep(0.2)
        assert replied(control), f"Open WebUI pushed gpt-beta's reply: {control}"
        assert "gpt-beta" in str(replied(control)), "the control sees the model"
        assert replied(seen), f"the gate passed the reply on: {seen}"
        assert visible(str([e for e in seen if e.get("channel_id") == channel])) == [], seen
    finally:
        through_gate.disconnect()
        direct.disconnect()
