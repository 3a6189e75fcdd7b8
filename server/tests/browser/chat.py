#!/usr/bin/env python3
"""The web client in a real browser: two users chat in Chromium.

Run by server/tests/browser.rs against a real server on port 0; by hand:

    python3 server/tests/browser/chat.py --base http://127.0.0.1:PORT [--headed]

Needs Debian's chromium (/usr/bin/chromium) and Playwright for Python (`pip install
playwright`; Playwright's own browser download is not used). Every wait is one of Playwright's
auto-waiting `expect` assertions or `wait_for_function`, bounded by a generous timeout: they
wait for an event, they do not measure time. See docs/web-client.md.
"""

import argparse
import secrets
import struct
import sys
import tempfile
import zlib
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

WAIT_MS = 20_000
PASSWORD = "correct-horse-9"

# Installed in bob's browser before the app loads: keeps the app's WebSockets so the test can
# close them under it (no offline event: the app only sees the close), and while `block` is set
# points new ones at a path that refuses the upgrade, so reconnect attempts fail like they do
# on a broken network.
SOCKET_SABOTAGE = """
(() => {
  const Native = window.WebSocket;
  const sockets = [];
  window.__test = { block: false, drop: () => sockets.forEach((s) => s.close()) };
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(window.__test.block ? String(url).replace('/ws?', '/no-such-socket?') : url, protocols);
      sockets.push(this);
    }
  };
})();
"""


def step(text: str) -> None:
    print(f"== {text}", flush=True)


def png(width: int, height: int, rgb: tuple) -> bytes:
    """A solid-colour RGB PNG, made by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def status(page: Page, state: str) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", state)


def submit_credentials(page: Page, account: str, password: str, register: bool) -> None:
    page.fill("#login-account", account)
    page.fill("#login-password", password)
    page.click("#register-button" if register else "#login-button")


def register(page: Page, account: str) -> None:
    submit_credentials(page, account, PASSWORD, register=True)
    expect(page.locator("#main")).to_be_visible()
    expect(page.locator("#me-name")).to_have_text(account)
    status(page, "online")


def send(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    # Acknowledged (durable): the message left the outbox and shows a delivery state.
    expect(page.locator(".msg.mine:not(.pending) .text", has_text=text)).to_have_count(1)


def image_shown(page: Page, selector: str) -> None:
    """Waits until the newest image matching `selector` is decoded (naturalWidth > 0)."""
    page.wait_for_function(
        """sel => {
            const all = document.querySelectorAll(sel);
            const img = all[all.length - 1];
            return !!img && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
        }""",
        arg=selector,
        timeout=WAIT_MS,
    )


def run(base: str, chromium: str, headed: bool) -> None:
    expect.set_options(timeout=WAIT_MS)
    suffix = secrets.token_hex(3)
    alice, bob = f"alice_{suffix}", f"bob_{suffix}"
    errors = []
    picture = Path(tempfile.mkdtemp()) / "red.png"
    picture.write_bytes(png(24, 16, (220, 30, 30)))

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            headless=not headed,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        contexts = {name: browser.new_context() for name in ("alice", "bob")}
        pages = {}
        for name, context in contexts.items():
            page = context.new_page()
            page.on("pageerror", lambda e, n=name: errors.append(f"{n}: {e}"))
            page.on(
                "console",
                lambda m, n=name: print(f"   [{n} console.{m.type}] {m.text}", flush=True)
                if m.type in ("error", "warning")
                else None,
            )
            pages[name] = page
        a, b = pages["alice"], pages["bob"]
        contexts["bob"].add_init_script(SOCKET_SABOTAGE)

        step("the page loads and shows the login form")
        a.goto(base + "/")
        b.goto(base + "/")
        expect(a.locator("#login")).to_be_visible()
        expect(b.locator("#login")).to_be_visible()

        step("register: refused input gets a clear error, then both register")
        submit_credentials(b, bob, "short", register=True)
        expect(b.locator("#login-error")).to_have_text("Choose a password of at least 8 characters.")
        register(a, alice)
        submit_credentials(b, alice, PASSWORD, register=True)
        expect(b.locator("#login-error")).to_have_text("That username is taken.")
        register(b, bob)

        step("alice starts a 1:1 conversation by username")
        a.fill("#new-chat-account", f"nobody_{suffix}")
        a.click("#new-chat button")
        expect(a.locator("#new-chat-error")).to_contain_text("There is no user")
        a.fill("#new-chat-account", bob)
        a.click("#new-chat button")
        expect(a.locator("#chat-title")).to_have_text(bob)

        step("alice sends; bob's list shows the unread count before he opens it")
        send(a, "hello bob")
        bob_item = b.locator("#conversations .conv", has_text=alice)
        expect(bob_item.locator(".badge")).to_have_text("1")
        expect(bob_item.locator(".preview")).to_have_text("hello bob")
        send(a, "are you there?")
        expect(bob_item.locator(".badge")).to_have_text("2")
        expect(a.locator(".msg.mine .state")).to_have_text(["sent", "sent"])

        step("bob opens it: history shows, the count clears, alice sees 'read'")
        bob_item.click()
        expect(b.locator("#chat-title")).to_have_text(alice)
        expect(b.locator(".msg.theirs .text")).to_have_text(["hello bob", "are you there?"])
        expect(bob_item.locator(".badge")).to_have_count(0)
        expect(a.locator(".msg.mine .state")).to_have_text(["read", "read"])

        step("bob replies; alice has the chat open and sees it live; bob sees 'read'")
        send(b, "hi alice")
        expect(a.locator(".msg.theirs .text")).to_have_text(["hi alice"])
        expect(b.locator(".msg.mine .state")).to_have_text(["read"])
        expect(a.locator("#conversations .conv", has_text=bob).locator(".badge")).to_have_count(0)

        step("alice sends an image: uploaded, sent, rendered on both sides")
        a.set_input_files("#image-input", str(picture))
        expect(a.locator(".msg.mine:not(.pending) img.image")).to_have_count(1)
        image_shown(a, ".msg.mine:not(.pending) img.image")
        image_shown(b, ".msg.theirs img.image")
        expect(b.locator(".msg.theirs img.image")).to_have_attribute("alt", "red.png")
        expect(a.locator(".msg.mine:not(.pending) .state").last).to_have_text("read")
        expect(bob_item.locator(".preview")).to_have_text("[image]")

        step("bob's network drops while alice sends; he catches up after it returns")
        contexts["bob"].set_offline(True)
        status(b, "offline")
        send(a, "while you were away 1")
        send(a, "while you were away 2")
        expect(a.locator(".msg.mine .state").last).to_have_text("sent")
        contexts["bob"].set_offline(False)
        status(b, "online")
        expect(b.locator(".msg.theirs .text")).to_have_text(
            ["hello bob", "are you there?", "while you were away 1", "while you were away 2"]
        )
        expect(a.locator(".msg.mine .state").last).to_have_text("read")

        step("bob's socket is closed under him and reconnects fail for a while; backoff wins")
        b.evaluate("() => { window.__test.block = true; window.__test.drop(); }")
        status(b, "offline")
        send(a, "after the second drop")
        b.evaluate("() => { window.__test.block = false; }")
        status(b, "online")
        expect(b.locator(".msg.theirs .text").last).to_have_text("after the second drop")
        expect(a.locator(".msg.mine .state").last).to_have_text("read")

        step("alice reloads: still signed in, the conversation and its history are back")
        a.reload()
        status(a, "online")
        expect(a.locator("#chat-title")).to_have_text(bob)
        expect(a.locator(".msg .text")).to_have_text(
            [
                "hello bob",
                "are you there?",
                "hi alice",
                "while you were away 1",
                "while you were away 2",
                "after the second drop",
            ]
        )
        image_shown(a, ".msg.mine img.image")
        expect(a.locator(".msg.mine .state")).to_have_text(["read"] * 6)
        expect(a.locator("#conversations .conv", has_text=bob)).to_have_count(1)

        step("bob, in the background of alice's reload, still gets her messages live")
        send(a, "back after reload")
        expect(b.locator(".msg.theirs .text").last).to_have_text("back after reload")

        step("alice logs out; a wrong password is refused clearly; the right one works")
        a.click("#logout")
        expect(a.locator("#login")).to_be_visible()
        submit_credentials(a, alice, "wrong-password-1", register=False)
        expect(a.locator("#login-error")).to_have_text("Wrong username or password.")
        submit_credentials(a, alice, PASSWORD, register=False)
        status(a, "online")
        expect(a.locator("#conversations .conv", has_text=bob)).to_have_count(1)

        step("a second tab of alice's browser takes the session over; 'Use here' takes it back")
        a2 = contexts["alice"].new_page()
        a2.on("pageerror", lambda e: errors.append(f"alice tab 2: {e}"))
        a2.goto(base + "/")
        status(a2, "online")
        status(a, "stopped")
        expect(a.locator("#status")).to_contain_text("another tab")
        a.click("#take-over")
        status(a, "online")
        status(a2, "stopped")
        a.locator("#conversations .conv", has_text=bob).click()
        send(a, "from the first tab again")
        expect(b.locator(".msg.theirs .text").last).to_have_text("from the first tab again")

        browser.close()

    if errors:
        raise AssertionError("uncaught errors in the pages:\n" + "\n".join(errors))
    print("ok: the browser client passed every step", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the server's HTTP address, http://host:port")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    parser.add_argument("--headed", action="store_true", help="show the browser windows")
    args = parser.parse_args()
    run(args.base.rstrip("/"), args.chromium, args.headed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
