"""The login form (the token, once, for a session cookie) and logging out."""

from __future__ import annotations

from aiohttp import web

from responder.console.auth import COOKIE, SESSION_SECONDS, safe_next
from responder.console.views import console_of, render


async def form(request: web.Request) -> web.Response:
    return render(request, "login.html", page="login", next=safe_next(request.query.get("next")))


async def login(request: web.Request) -> web.StreamResponse:
    gate = console_of(request).gate
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return render(
            request,
            "login.html",
            403,
            page="login",
            next="/console/",
            error="cross-site login refused",
        )
    data = await request.post()
    target = safe_next(str(data.get("next", "")))
    if not gate.may_try():
        return render(
            request,
            "login.html",
            429,
            page="login",
            next=target,
            error="too many tries: wait a minute",
        )
    if not gate.token_ok(str(data.get("token", ""))):
        gate.failed()
        return render(request, "login.html", 401, page="login", next=target, error="wrong token")
    response = web.Response(status=303, headers={"Location": target})
    response.set_cookie(
        COOKIE,
        gate.new_session(),
        max_age=SESSION_SECONDS,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": "/console/login"})
    response.del_cookie(COOKIE, path="/console")
    return response
