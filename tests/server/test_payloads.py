"""Every example payload of both protocol references, over HTTP with the method its sender
uses: 200 and the right kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import wait_for, write_rules
from tests.providers import test_hoiio, test_textit
from tests.providers._support import content_type_of, method_of, pairs, payload, payload_names

CASES = [("textit", n, test_textit.TABLE[n]["kind"]) for n in payload_names("textit")] + [
    ("hoiio", n, test_hoiio.TABLE[n]["kind"]) for n in payload_names("hoiio")
]


@pytest.mark.parametrize(("provider", "name", "kind"), CASES, ids=[c[1] for c in CASES])
async def test_payload_over_http(
    make_client, fake_http, tmp_path: Path, provider: str, name: str, kind: str
) -> None:
    rules = write_rules(
        tmp_path / "r",
        f"""
        rules:
          - name: observe
            on: "*"
            http: {{url: "{fake_http.url}/seen", json: {{kind: "{{{{ kind }}}}"}}}}
    """,
    )
    client = await make_client(rules)
    if method_of(name) == "GET":
        # A flow webhook sent with GET: the parameters in the URL, no body.
        query = payload(provider, name).decode("ascii")
        resp = await client.get(f"/webhooks/{provider}", params=pairs(query.encode()))
    else:
        resp = await client.post(
            f"/webhooks/{provider}",
            data=payload(provider, name),
            headers={"Content-Type": content_type_of(name)},
        )
    assert resp.status == 200
    await wait_for(lambda: len(fake_http.requests) == 1)
    assert fake_http.requests[0].json == {"kind": kind}
