"""LiteLLM custom auth for load/parity.sh (general_settings.custom_auth).

One accepted key, one model allowlist, both from the environment that
load/litellm/start.sh gives the proxy:

  MODELGATE_LOAD_LITELLM_KEY     the bearer key to accept (the fixture user's
                                 Open WebUI session token)
  MODELGATE_LOAD_LITELLM_MODELS  JSON list of the model names that key may use

The key's allowlist is returned on the UserAPIKeyAuth (``models``) and is
enforced by LiteLLM itself, not here: with
general_settings.custom_auth_run_common_checks and
litellm_settings.enable_post_custom_auth_checks both true, LiteLLM runs
enforce_key_and_fallback_model_access (can_key_call_model) after this
function returns, so a request for any other model is refused with LiteLLM's
own 401 (key_model_access_denied). Requests run no database look-up: there
is no database.
"""

import hmac
import json
import os

from fastapi import Request

from litellm.proxy._types import LitellmUserRoles, ProxyErrorTypes, ProxyException, UserAPIKeyAuth

_KEY = os.environ["MODELGATE_LOAD_LITELLM_KEY"].encode()
_MODELS = json.loads(os.environ["MODELGATE_LOAD_LITELLM_MODELS"])


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if not api_key or not hmac.compare_digest(api_key.encode(), _KEY):
        raise ProxyException(
            message="invalid key",
            type=ProxyErrorTypes.auth_error,
            param="api_key",
            code=401,
        )
    return UserAPIKeyAuth(
        api_key=api_key,  # a JWT (the session token) is kept only as its hash
        key_alias="modelgate-load",
        user_role=LitellmUserRoles.INTERNAL_USER,
        models=list(_MODELS),
    )
