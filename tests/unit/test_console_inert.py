# ruff: noqa: E501  (a corpus of hostile bodies, one a line)
"""Archived email HTML made inert: a corpus of hostile bodies, each checked to
lose what could run or fetch, and to have its URLs listed instead."""

from __future__ import annotations

import re

import pytest

from msgarchive_server.edge.console.inert import FRAME_POLICY, inert

CANARY = "http://canary.test"

# (name, body): each tries to run a script or fetch from CANARY.
HOSTILE = [
    ("script", f'<script src="{CANARY}/script.js"></script><script>alert(1)</script>'),
    ("on handler", f'<img src="{CANARY}/onerror.png" onerror="alert(1)"><body onload="alert(2)">'),
    ("javascript url", '<a href="javascript:alert(1)">x</a><a href="JaVaScRiPt:alert(1)">y</a>'),
    ("data url", '<a href="data:text/html,<script>alert(1)</script>">d</a><img src="data:image/svg+xml,<svg onload=alert(1)>">'),
    ("meta refresh", f'<meta http-equiv="refresh" content="0;url={CANARY}/refresh">'),
    ("base", f'<base href="{CANARY}/base/"><img src="relative.png">'),
    ("form", f'<form action="{CANARY}/form"><input name=a><button formaction="{CANARY}/b">go</button></form>'),
    ("svg script", f'<svg><script>alert(1)</script><image href="{CANARY}/svg-image.png"/></svg>'),
    ("svg onload", "<svg onload=alert(1)><circle r=5 /></svg>"),
    ("css url", f'<div style="background:url({CANARY}/css-url.png)">x</div>'),
    ("css url quoted", f"<div style=\"background-image:url('{CANARY}/css-quoted.png')\">x</div>"),
    ("css escaped url", f'<div style="background:u\\72l({CANARY}/css-escaped.png)">x</div>'),
    ("css escaped all", f'<div style="background:\\75\\72\\6c({CANARY}/css-escaped-all.png)">x</div>'),
    ("css comment url", f'<div style="background:u/**/rl({CANARY}/css-comment.png)">x</div>'),
    ("style element url", f"<style>body{{background:url({CANARY}/style-url.png)}}</style>"),
    ("style import", f'<style>@import "{CANARY}/import.css"; @import url({CANARY}/import2.css);</style>'),
    ("style escaped import", f'<style>@\\69mport "{CANARY}/import-escaped.css";</style>'),
    ("style image-set", f'<style>p{{background:image-set("{CANARY}/set.png" 1x)}}</style>'),
    ("style font", f"<style>@font-face{{font-family:x;src:url({CANARY}/font.woff)}}</style>"),
    ("style breakout", "<style>p{}</style><img src=x onerror=alert(1)></style>"),
    ("link stylesheet", f'<link rel="stylesheet" href="{CANARY}/link.css">'),
    ("link prefetch", f'<link rel="prefetch" href="{CANARY}/prefetch"><link rel="dns-prefetch" href="{CANARY}">'),
    ("img", f'<img src="{CANARY}/pixel.gif" width=1 height=1>'),
    ("img srcset", f'<img srcset="{CANARY}/s1.png 1x, {CANARY}/s2.png 2x">'),
    ("picture source", f'<picture><source srcset="{CANARY}/source.webp"><img src="{CANARY}/picture.png"></picture>'),
    ("background attribute", f'<table background="{CANARY}/table-bg.png"><tr><td background="{CANARY}/td-bg.png">x</td></tr></table>'),
    ("body background", f'<body background="{CANARY}/body-bg.png">x</body>'),
    ("input image", f'<input type="image" src="{CANARY}/input.png">'),
    ("image element", f'<image src="{CANARY}/image-element.png">'),
    ("object", f'<object data="{CANARY}/object.swf"></object>'),
    ("embed", f'<embed src="{CANARY}/embed.swf">'),
    ("iframe", f'<iframe src="{CANARY}/iframe.html"></iframe><iframe srcdoc="<script>alert(1)</script>"></iframe>'),
    ("frameset", f'<frameset><frame src="{CANARY}/frame.html"></frameset>'),
    ("video audio", f'<video poster="{CANARY}/poster.png" src="{CANARY}/v.mp4"></video><audio src="{CANARY}/a.mp3"></audio>'),
    ("track", f'<video><track src="{CANARY}/track.vtt"></video>'),
    ("template", "<template><script>alert(1)</script></template>"),
    ("noscript", f'<noscript><img src="{CANARY}/noscript.png"></noscript>'),
    ("math", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("protocol relative", '<img src="//canary.test/protocol-relative.png">'),
    ("entity encoded javascript", '<a href="&#106;avascript:alert(1)">e</a>'),
    ("xlink", f'<svg><a xlink:href="{CANARY}/xlink"><text>x</text></a></svg>'),
    ("area", f'<map><area href="{CANARY}/area" shape=rect coords="0,0,1,1"></map>'),
    ("ping", f'<a href="#" ping="{CANARY}/ping">p</a>'),
    ("meta csp override", "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src *\">"),
    ("expression", '<div style="width:expression(alert(1))">x</div>'),
    ("behavior binding", '<div style="behavior:url(x.htc);-moz-binding:url(x.xml#y)">x</div>'),
    ("srcdoc comment", "<!--<script>alert(1)</script>-->"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body"), HOSTILE, ids=[n for n, _ in HOSTILE])
def test_a_hostile_body_loses_everything_that_could_run_or_fetch(name: str, body: str) -> None:
    made = inert(body).html.lower()
    assert "<script" not in made
    assert not re.search(r"\son[a-z]+\s*=", made)
    assert "javascript:" not in made
    assert "canary.test" not in made
    for gone in ("<iframe", "<object", "<embed", "<form", "<input", "<base", "<meta", "<link",
                 "<svg", "<math", "<frame", "<video", "<audio", "<template", "@import",
                 "url(", "expression(", "binding", "srcset", "src=", "href=", "background="):  # fmt: skip
        assert gone not in made, gone


def test_what_it_would_have_fetched_is_listed_and_links_apart() -> None:
    body = (
        f'<img src="{CANARY}/pixel.gif"><div style="background:u\\72l({CANARY}/bg.png)">x</div>'
        f'<a href="{CANARY}/offer">offer</a><img src="{CANARY}/pixel.gif">'
    )
    made = inert(body)
    assert made.not_loaded == [f"{CANARY}/pixel.gif", f"{CANARY}/bg.png"]
    assert made.links == [f"{CANARY}/offer"]
    assert "offer" in made.html  # the link's text stays


def test_a_body_keeps_its_look() -> None:
    body = (
        '<table width="600" cellpadding="4" bgcolor="#ffffff"><tr><td align="center" '
        'style="color:#333;font-size:18px;padding:8px">Hello <b>Jane</b></td></tr></table>'
        "<style>.x{color:red}</style><p class=x>20% off</p>"
    )
    made = inert(body).html
    for kept in ('width="600"', 'bgcolor="#ffffff"', "color:#333;font-size:18px", "<b>Jane</b>",
                 "<style>.x{color:red}</style>", 'class="x"'):  # fmt: skip
        assert kept in made, kept


def test_the_frame_document_starts_with_a_policy_that_loads_nothing() -> None:
    doc = inert("<p>hi</p>").srcdoc
    assert doc.startswith('<!doctype html><meta http-equiv="Content-Security-Policy"')
    assert "default-src 'none'" in FRAME_POLICY
    assert "script" not in FRAME_POLICY
    assert doc.endswith("<p>hi</p>")
