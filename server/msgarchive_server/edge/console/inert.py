"""An archived email's HTML made inert, to be shown to a reviewer.

Marketing email is hostile content: scripts, tracking pixels that tell the
sender who opened it (and so would tell them a reviewer did, from where, and
when), forms, frames, and CSS that fetches. The console shows a body in three
layers, each enough alone against a fetch or a script:

1. **Sanitised here** (nh3, the bindings of Rust's ammonia, on html5ever,
   the parser browsers' own HTML5 algorithm is written to): only layout and
   text elements and attributes survive; no `<script>`, `<style>` content that
   fetches, `<form>`, `<iframe>`, `<object>`, `<embed>`, `<svg>`, `<math>`,
   `<base>`, `<meta>`, `<link>`, event handlers or unknown attributes. Every
   attribute that names a URL (`src`, `srcset`, `href`, `background`,
   `poster`, ...) is removed, and its URLs are kept as text for the page to
   list. In CSS (`style` attributes and `<style>` elements), escapes and
   comments are decoded first, then every `url(...)`, `image-set(...)`,
   `@import`, `expression(...)` and `-moz-binding` goes.
2. **A policy of its own**: the body starts with a `<meta>`
   Content-Security-Policy that loads nothing (`default-src 'none'`, inline
   styles only), and the frame's document inherits the console page's policy
   as well (`srcdoc` documents do).
3. **A sandbox**: the page puts it in `<iframe sandbox srcdoc=...>` with no
   `allow-*` token: no script, no form, no plugin, no navigation of the page
   around it, and a unique origin.

Links lose their target (a click would navigate the frame to the sender's
server): the reviewer sees the link's text, and the URL in the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import nh3

# The frame's own policy: nothing is fetched; inline style is kept, for the
# body to look as it did.
FRAME_POLICY = "default-src 'none'; style-src 'unsafe-inline'"

_TAGS = {
    "a", "abbr", "address", "article", "aside", "b", "bdi", "bdo", "big", "blockquote", "br",
    "caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn",
    "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4",
    "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li", "main", "mark", "nav", "ol",
    "p", "pre", "q", "s", "samp", "section", "small", "span", "strike", "strong", "style",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr",
    "tt", "u", "ul", "var", "wbr",
}  # fmt: skip
_COMMON = {
    "align", "bgcolor", "border", "cellpadding", "cellspacing", "class", "color", "colspan",
    "dir", "face", "height", "id", "lang", "rowspan", "size", "style", "title", "valign",
    "width", "alt",
}  # fmt: skip
# Kept only for the filter to see (and remove) them, so that their URLs are listed.
_URL_ATTRIBUTES = {"src", "srcset", "href", "background", "poster", "cite", "longdesc", "lowsrc"}
_ATTRIBUTES = {tag: _COMMON | _URL_ATTRIBUTES for tag in _TAGS}
# Elements whose content goes with them (nh3 keeps the text of other removed tags).
_DROPPED_WITH_CONTENT = {
    "script", "noscript", "template", "iframe", "frame", "frameset", "object", "embed",
    "applet", "svg", "math", "form", "select", "textarea", "button", "head", "title",
    "video", "audio", "canvas", "noembed", "noframes", "xmp", "plaintext",
}  # fmt: skip

_URL_IN_TEXT = re.compile(r"""(?:https?:)?//[^\s"'<>()\\,]+""", re.IGNORECASE)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\r\n\f]?|\\(.)", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(\*/|$)", re.DOTALL)
_CSS_FETCHING = re.compile(
    r"""@import[^;]*;?|(?:url|image-set|-webkit-image-set|image|cross-fade|element|expression)\s*\([^)]*\)?"""
    r"""|-moz-binding|behavior\s*:""",
    re.IGNORECASE,
)
_STYLE_ELEMENT = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.DOTALL | re.IGNORECASE)


@dataclass
class Inert:
    """A body made inert: the HTML to put in the frame, and what was taken out."""

    html: str
    not_loaded: list[str] = field(default_factory=list)  # what it would have fetched, once each
    links: list[str] = field(default_factory=list)  # where its links led, once each

    @property
    def srcdoc(self) -> str:
        """The frame's whole document: its policy first, then the body."""
        return (
            f'<!doctype html><meta http-equiv="Content-Security-Policy" content="{FRAME_POLICY}">'
            f"{self.html}"
        )


def inert(body: str) -> Inert:
    """`body`, an email's HTML as archived, sanitised (see the module's text)."""
    found: list[str] = []
    links: list[str] = []

    def attribute(tag: str, name: str, value: str) -> str | None:
        if name in _URL_ATTRIBUTES:
            into = links if (tag, name) in (("a", "href"), ("area", "href")) else found
            into.extend(_urls(value) or ([value.strip()] if value.strip() else []))
            return None
        if name == "style":
            return _css(value, found)
        return value

    cleaned = nh3.clean(
        body,
        tags=_TAGS,
        clean_content_tags=_DROPPED_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=attribute,
        strip_comments=True,
        link_rel=None,
        url_schemes={"http", "https"},  # others go unseen; these the filter lists, then drops
    )
    cleaned = _STYLE_ELEMENT.sub(
        lambda m: m.group(1) + _css(m.group(2), found).replace("<", "\\3c ") + m.group(3),
        cleaned,
    )
    return Inert(cleaned, list(dict.fromkeys(found)), list(dict.fromkeys(links)))


def _css(text: str, found: list[str]) -> str:
    """CSS with everything that could fetch removed (its URLs added to `found`)."""
    decoded = _CSS_COMMENT.sub("", _CSS_ESCAPE.sub(_unescape, text))

    def drop(match: re.Match[str]) -> str:
        found.extend(_urls(match.group(0)))
        return "none" if match.group(0).endswith(")") else ""

    return _CSS_FETCHING.sub(drop, decoded)


def _unescape(match: re.Match[str]) -> str:
    if match.group(1):
        point = int(match.group(1), 16)
        return chr(point) if 0 < point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF else "\ufffd"
    return match.group(2)


def _urls(text: str) -> list[str]:
    return _URL_IN_TEXT.findall(text)
