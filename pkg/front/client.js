// ffl's corrections to xpra 3.1's HTML5 client, loaded by its index.html (the front adds this
// script to that page; see docs/DESIGN.md, "Keyboard and clipboard", for why each is needed and
// how it was found). Each part applies only to the 3.x client it was checked against: a newer
// client gets nothing from here but the keyboard layout.
(function () {
	"use strict";
	var self = document.currentScript;
	var layout = self ? self.getAttribute("data-keyboard-layout") : "";
	var starting = self ? self.getAttribute("data-starting") === "1" : false;
	if (typeof Utilities === "undefined" || typeof XpraClient === "undefined") {
		return;
	}

	// The keyboard layout ffl.toml sets (keyboard_layout), instead of the one the client guesses
	// from the browser's language. A ?keyboard_layout= in the URL still wins.
	if (layout) {
		Utilities.getKeyboardLayout = function () { return layout; };
	}
	if (!/^3\./.test(String(Utilities.VERSION))) {
		return;
	}
	var P = XpraClient.prototype;

	// Keys arrive once, however late the release: with keyboard_sync (the default of xpra 3.1)
	// the server holds a key down in X until the client's release arrives, and X's own
	// autorepeat types it again when that takes longer than the repeat delay (a busy node, a
	// slow link). Unsynced, the server types each keydown the browser sends at once; a key the
	// user holds repeats at the rate of the user's own keyboard (the browser's repeated keydowns).
	//
	// The screen takes the browser's size once Firefox's first frames are drawn, not before: for
	// a size its X server does not have yet (every session's first client), xpra 3.1 adds a
	// RandR mode and then sleeps 0.5 s on its main thread (x11_server_core.py,
	// do_get_best_screen_size), so the first visit of a session showed Firefox 0.5 s later than
	// any later one (docs/DESIGN.md, "first visit"). Without a size in the hello xpra keeps its
	// screen as it is and answers at once; the size follows in a desktop_size packet (what the
	// client sends when the browser window is resized) when the draws pause: sent after the first
	// draw packet, xpra's wait held the next one, Firefox's repaint at the view's size (the first
	// frame is often one taken before Firefox had repainted after the window's resize below).
	// SIZE_QUIET is that pause, SIZE_MOST the longest a page that keeps drawing delays it.
	// While Firefox is still starting (the page was served then, and ffl's "Starting Firefox"
	// overlay still covers it) the size stays in the hello: xpra's wait then falls within
	// Firefox's start, where nobody waits on it, and not between Firefox's first frame and its
	// painted page.
	var SIZE_QUIET = 250, SIZE_MOST = 2000;
	var makeHello = P._make_hello;
	P._make_hello = function () {
		makeHello.apply(this, arguments);
		this._update_capabilities({"keyboard_sync": false});
		this.fflSizeUntil = 0;
		this.fflQueue = null; // input of a connection before is not replayed into this one
		clearTimeout(this.fflDrainTimer);
		if (starting && document.getElementById("ffl-starting")) {
			return;
		}
		delete this.capabilities["desktop_size"];
		delete this.capabilities["desktop_mode_size"];
		delete this.capabilities["screen_sizes"];
		this.fflSizeLater = true;
		this.fflSizeBy = 0;
		clearTimeout(this.fflSizeTimer); // a reconnect's own draws decide
	};
	function sendSize(ctx) {
		ctx.fflSizeLater = false;
		if (ctx.connected) {
			ctx.send(["desktop_size", ctx.desktop_width, ctx.desktop_height, ctx._get_screen_sizes()]);
			if (sizeChanges(ctx)) {
				ctx.fflSizeUntil = Date.now() + SIZE_WAIT_MOST; // input waits for xpra's answer (below)
			}
		}
	}
	// sizeChanges says whether xpra will change its screen for the browser's size and answer
	// with desktop_size: a size it does not have that fits its maximum (both from its hello).
	// Otherwise there is no answer to wait for (nor any 0.5 s wait of xpra's to fear, or one the
	// gate below cannot know of).
	function sizeChanges(ctx) {
		var w = ctx.desktop_width, h = ctx.desktop_height, cur = ctx.fflServerSize, max = ctx.fflServerMax;
		if (!cur || !max) {
			return false;
		}
		return (w !== cur[0] || h !== cur[1]) && w <= max[0] && h <= max[1];
	}
	var hello = P._process_hello;
	P._process_hello = function (packet, ctx) {
		var caps = packet[1] || {};
		ctx.fflServerSize = caps["actual_desktop_size"];
		ctx.fflServerMax = caps["max_desktop_size"];
		return hello.apply(this, arguments);
	};
	// The user's first click, key, wheel or paste sends the size first if it is still waiting:
	// xpra's 0.5 s wait then comes before that input, as it did when the size went with the
	// first frame, and never in the middle of it (a paste into Firefox right after the page
	// was shown came out empty in 2 of 6 runs of TestClipboardIntoFirefox while the screen
	// changed under it). Pointer moves alone do not: a mouse resting over the page would
	// bring the wait back into the first frames.
	var INPUT = {"key-action": 1, "button-action": 1, "wheel-motion": 1, "clipboard-token": 1};
	var sendPacket = P.send;
	P.send = function (packet) {
		if (this.fflSizeLater && packet && INPUT[packet[0]]) {
			clearTimeout(this.fflSizeTimer);
			sendSize(this);
		}
		if (packet && GATED[packet[0]] && (this.fflQueue || gateWait(this, packet) > 0)) {
			(this.fflQueue = this.fflQueue || []).push(packet);
			drain(this);
			return;
		}
		return sendInput(this, packet);
	};

	// A paste gets the browser's clipboard, also right after a click or a copy elsewhere, which
	// takes two things xpra 3.1 and its client do not give (TestClipboardIntoFirefox, a paste
	// right after the click, came out empty in 1 of 8 runs, and in 3 of 15 with the client from
	// before the size's deferral above):
	//   - The client reads the browser's clipboard at every click and key (_poll_clipboard;
	//     readText() is asynchronous) and sends it (a clipboard-token) when it changed, but it
	//     sends the key itself on a 0 ms timer that does not wait for that read: a paste key can
	//     leave before the new clipboard. So a key press with Control or Meta, or Insert
	//     (Shift+Insert), waits while a read is pending, at most HOLD_MOST: a read waiting on
	//     the browser's permission prompt must not freeze the keyboard, nor slow every later
	//     paste while the prompt stays open (reads that outlasted it are not waited for again
	//     until all pending ones end).
	//   - xpra handles a clipboard packet on its main thread by queueing it there a second time
	//     (clipboard_server.py: idle_add of process_clipboard_packet), a key once: a key that is
	//     queued before the token's first turn comes is typed before xpra owns the new clipboard.
	//     That happens whenever both wait for the main thread, as during xpra's 0.5 s for the
	//     screen size the first input sends (above); seen with --debug=clipboard,keyboard: the
	//     keys at .072-.082, the token at .092, sent before them. So while that size is being
	//     applied (until xpra's desktop_size answer, at most SIZE_WAIT_MOST) input waits here,
	//     and a paste key leaves TOKEN_SETTLE after the last token, which an idle main thread
	//     has handled by then.
	// Everything behind a waiting packet waits too, so the order stays the user's. Typing
	// without those modifiers waits only for the first input's size.
	var HOLD_MOST = 1000, SIZE_WAIT_MOST = 1500, TOKEN_SETTLE = 50;
	var GATED = {"key-action": 1, "button-action": 1, "pointer-position": 1, "wheel-motion": 1, "clipboard-token": 1};
	function pasteChord(packet) {
		if (packet[0] !== "key-action" || !packet[3]) {
			return false;
		}
		var mods = packet[4] || [];
		return packet[2] === "Insert" || mods.indexOf("control") >= 0 || mods.indexOf("meta") >= 0;
	}
	// gateWait is how many ms packet must still wait (0: it may leave now).
	function gateWait(ctx, packet) {
		var now = Date.now();
		if (ctx.fflSizeUntil > now) {
			return ctx.fflSizeUntil - now;
		}
		if (pasteChord(packet)) {
			if (ctx.fflPolls > 0 && !ctx.fflReadsStuck) {
				if (ctx.fflHeldSince && now - ctx.fflHeldSince >= HOLD_MOST) {
					// Reads that outlast HOLD_MOST (a permission prompt left open) are not
					// waited for again until every pending one has ended.
					ctx.fflReadsStuck = true;
					return 0;
				}
				return 10; // and at once when the read ends (drain below)
			}
			if (ctx.fflTokenAt && now - ctx.fflTokenAt < TOKEN_SETTLE) {
				return TOKEN_SETTLE - (now - ctx.fflTokenAt);
			}
		}
		return 0;
	}
	function sendInput(ctx, packet) {
		if (packet && packet[0] === "clipboard-token") {
			ctx.fflTokenAt = Date.now();
		}
		return sendPacket.call(ctx, packet);
	}
	// drain sends the waiting packets that may leave, in order, and comes back for the rest.
	function drain(ctx) {
		clearTimeout(ctx.fflDrainTimer);
		var q = ctx.fflQueue;
		while (q && q.length) {
			var wait = gateWait(ctx, q[0]);
			if (wait > 0) {
				if (!ctx.fflHeldSince) {
					ctx.fflHeldSince = Date.now();
				}
				ctx.fflDrainTimer = setTimeout(drain, wait, ctx);
				return;
			}
			sendInput(ctx, q.shift());
		}
		ctx.fflQueue = null;
		ctx.fflHeldSince = 0;
	}
	var desktopSize = P._process_desktop_size;
	P._process_desktop_size = function (packet, ctx) {
		desktopSize.apply(this, arguments);
		ctx.fflSizeUntil = 0;
		drain(ctx);
	};
	var poll = P._poll_clipboard;
	P._poll_clipboard = function () {
		var cb = navigator.clipboard, ctx = this;
		if (!cb || !cb.readText) {
			return poll.apply(this, arguments);
		}
		var read = cb.readText;
		cb.readText = function () {
			var p = read.call(cb);
			ctx.fflPolls = (ctx.fflPolls || 0) + 1;
			var done = function () {
				if (--ctx.fflPolls === 0) {
					ctx.fflReadsStuck = false;
				}
				drain(ctx);
			};
			// After the client's own handlers (which send the token): a microtask runs once the
			// caller's synchronous .then() is in place.
			Promise.resolve().then(function () { p.then(done, done); });
			return p;
		};
		try {
			return poll.apply(this, arguments);
		} finally {
			delete cb.readText;
		}
	};
	var draw = P._process_draw;
	P._process_draw = function (packet, ctx) {
		draw.apply(this, arguments);
		if (!ctx.fflSizeLater) {
			return;
		}
		var now = Date.now();
		if (!ctx.fflSizeBy) {
			ctx.fflSizeBy = now + SIZE_MOST;
		}
		clearTimeout(ctx.fflSizeTimer);
		ctx.fflSizeTimer = setTimeout(sendSize, Math.max(0, Math.min(SIZE_QUIET, ctx.fflSizeBy - now)), ctx);
	};

	// Firefox fills the browser's view. Firefox sizes its first window from the X screen it
	// starts on (a new profile's window on xpra's 2560x1600 screen is 1280x1040), before any
	// browser is there, and xpra 3.1's client shows a window at the size it has: in a 1280x757
	// view the bottom 283 pixels of Firefox (the end of every page) were out of reach. A main
	// window (not override-redirect: menus, tooltips; of type NORMAL; not transient for another:
	// dialogs) is mapped at the view's size and marked maximized, so the client fits it to the
	// view again whenever the view changes (the browser window resized, the screen's size sent
	// after the first frame above). Dialogs keep their own size, centred on the X screen, which
	// takes the view's size.
	var newWindow = P._new_window;
	P._new_window = function (wid, x, y, w, h, metadata, override_redirect, client_properties) {
		var main = !override_redirect && metadata && String(metadata["window-type"]) === "NORMAL" &&
			!metadata["transient-for"];
		if (!main) {
			return newWindow.apply(this, arguments);
		}
		newWindow.call(this, wid, 0, 0, this.desktop_width, this.desktop_height, metadata, override_redirect, client_properties);
		var win = this.id_to_window[wid];
		if (win) {
			win.set_maximized(true);
		}
	};

	// Dead keys: the browser composes them itself (^ then e is one keydown with key "ê"), but a
	// German or French X keymap has no key for "ê", so xpra 3.1 drops it, and the dead key the
	// client forwarded waits in Firefox for the next key. Instead the dead key stays here, and
	// the composed key is sent as what the user typed on the server's keymap of the same layout:
	// the dead key (named by the composed character's accent) and then the base key, which X
	// composes in Firefox exactly as the user's own keyboard did.
	var DEAD_MARK = {
		"\u0300": "dead_grave", "\u0301": "dead_acute", "\u0302": "dead_circumflex",
		"\u0303": "dead_tilde", "\u0308": "dead_diaeresis", "\u030a": "dead_abovering",
		"\u0327": "dead_cedilla", "\u030c": "dead_caron"
	};
	var DEAD_SPACING = {
		"^": "dead_circumflex", "`": "dead_grave", "\u00b4": "dead_acute", "~": "dead_tilde",
		"\u00a8": "dead_diaeresis", "\u00b0": "dead_abovering", "\u00b8": "dead_cedilla", "\u02c7": "dead_caron"
	};
	var MODIFIER_KEYS = {"Shift": 1, "Control": 1, "Alt": 1, "AltGraph": 1, "Meta": 1, "CapsLock": 1};
	function keysym(ch) {
		if (typeof CHAR_TO_NAME !== "undefined" && CHAR_TO_NAME[ch]) {
			return CHAR_TO_NAME[ch];
		}
		return ch;
	}
	// deadSequence is [dead keysym, base keysym] for a key the browser composed after a dead
	// key, or null.
	function deadSequence(key) {
		if (DEAD_SPACING[key]) {
			return [DEAD_SPACING[key], "space", " "];
		}
		var d = key.normalize("NFD");
		if (d.length === 2 && DEAD_MARK[d[1]]) {
			return [DEAD_MARK[d[1]], keysym(d[0]), d[0]];
		}
		return null;
	}
	var client = null;
	var init = P.init_packet_handlers;
	P.init_packet_handlers = function () {
		client = this;
		return init.apply(this, arguments);
	};
	var deadPending = false;
	var composedCodes = {};
	function active() {
		return client && client.capture_keyboard && client.topwindow != null && !client.server_readonly && client.connected;
	}
	// send queues the press and release of a key behind the key events the client has queued
	// (it sends each from a zero timeout, and timeouts run in order), so keys keep their order.
	function send(name, str, keycode, mods) {
		var wid = client.topwindow;
		setTimeout(function () {
			client.send(["key-action", wid, name, true, mods, keycode, str, keycode, 0]);
			client.send(["key-action", wid, name, false, mods, keycode, str, keycode, 0]);
		}, 0);
	}
	window.addEventListener("keydown", function (e) {
		if (!active()) {
			return;
		}
		if (e.key === "Dead") {
			deadPending = true;
			e.preventDefault();
			e.stopImmediatePropagation();
			return;
		}
		if (!deadPending || MODIFIER_KEYS[e.key]) {
			return;
		}
		deadPending = false;
		var seq = deadSequence(e.key || "");
		if (!seq) {
			return;
		}
		e.preventDefault();
		e.stopImmediatePropagation();
		composedCodes[e.code] = true;
		var mods = client._keyb_get_modifiers(e);
		send(seq[0], "", 0, []);
		send(seq[1], seq[2], e.keyCode || 0, mods);
	}, true);
	window.addEventListener("keyup", function (e) {
		if (e.key === "Dead" || composedCodes[e.code]) {
			delete composedCodes[e.code];
			e.preventDefault();
			e.stopImmediatePropagation();
		}
	}, true);

	// Clipboard text is UTF-8 on the wire. The 3.1 client writes what Firefox copied to the
	// browser's clipboard as one character per byte ("GrÃ¼Ãe"), and answers the server's request
	// for the browser's clipboard with one byte per character (東 becomes "q"), which Firefox
	// then refuses to paste.
	function toUTF8(s) {
		return unescape(encodeURIComponent(s));
	}
	function fromUTF8(s) {
		try {
			return decodeURIComponent(escape(s));
		} catch (err) {
			return s;
		}
	}
	var token = P._process_clipboard_token;
	P._process_clipboard_token = function (packet, ctx) {
		var cb = navigator.clipboard;
		if (!cb || !cb.writeText) {
			return token.apply(this, arguments);
		}
		var write = cb.writeText;
		cb.writeText = function (s) { return write.call(cb, fromUTF8(s)); };
		try {
			return token.apply(this, arguments);
		} finally {
			delete cb.writeText;
		}
	};
	var request = P._process_clipboard_request;
	P._process_clipboard_request = function (packet, ctx) {
		var id = packet[1], selection = packet[2];
		if (selection !== "CLIPBOARD" || !navigator.clipboard || !navigator.clipboard.readText) {
			return request.apply(this, arguments);
		}
		navigator.clipboard.readText().then(function (text) {
			ctx.send_clipboard_string(id, selection, toUTF8(text), "UTF8_STRING");
		}, function () {
			// Not allowed to read it now: what the client last saw of it (already UTF-8).
			ctx.send_clipboard_string(id, selection, ctx.get_clipboard_buffer() || "", "UTF8_STRING");
		});
	};
})();
