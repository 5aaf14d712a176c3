//! Headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: the browser reads commands on fd 3 and
//! writes answers and events on fd 4, each message ending with a NUL).
//!
//! Every request a page makes is seen twice: in the protocol's
//! `Network.requestWillBeSent` events, from the page and from every frame
//! the browser attaches (sandboxed frames may live in a process of their
//! own), and at a proxy on loopback that every HTTP, HTTPS and WebSocket
//! connection of the page's browser context goes through and that answers
//! none of them. The browser's own background connections use the default
//! context, not this one, so they do not count.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// How long one answer of the browser may take before the test gives up
/// (a guard against a hung browser, not a measure of speed).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// The Chromium binary: `$CELLRUN_CHROMIUM`, else `chromium` on the path.
///
/// # Panics
/// When there is none, with the command that installs it.
pub(crate) fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CELLRUN_CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "this test opens the report in Chromium, which is not installed: \
             run `apt-get install chromium` (`.ci/run` does it), or set CELLRUN_CHROMIUM"
        )
    })
}

/// A running headless Chromium.
pub(crate) struct Chromium {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    /// Events that came while waiting for an answer.
    events: VecDeque<Value>,
    /// Every `Network.requestWillBeSent`, from any session.
    pub(crate) requests: Vec<Request>,
    next_id: u64,
    proxy: Arc<Mutex<Vec<String>>>,
    proxy_port: u16,
}

/// A request a page began.
#[derive(Debug)]
pub(crate) struct Request {
    /// The URL of the document that made it.
    pub(crate) document: String,
    pub(crate) url: String,
    /// Why the browser stopped it before it left (`csp`, ...), if it did.
    pub(crate) blocked: Option<String>,
    session: String,
    id: String,
}

/// A pipe whose two ends close on exec, moved above the standard numbers
/// so that placing the child's ends at 3 and 4 cannot clobber either.
fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let status = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(status, 0, "pipe2: {}", std::io::Error::last_os_error());
    fds.map(|fd| {
        // SAFETY: `fd` is open; F_DUPFD_CLOEXEC returns a new descriptor.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        assert!(high >= 10, "fcntl: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is open and no longer used.
        unsafe { libc::close(fd) };
        high
    })
    .into()
}

impl Chromium {
    /// Starts Chromium with an empty profile in `profile`, and the proxy
    /// its pages will use.
    pub(crate) fn launch(profile: &Path) -> Chromium {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Arc::new(Mutex::new(Vec::new()));
        let seen = proxy.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut first = String::new();
                let _ = BufReader::new(&stream).read_line(&mut first);
                seen.lock().unwrap().push(first.trim_end().to_owned());
                let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            }
        });

        let (to_browser_read, to_browser_write) = pipe();
        let (from_browser_read, from_browser_write) = pipe();
        let mut command = Command::new(binary());
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-pipe",
                "--window-size=1280,1600",
                // The browser preconnects to its search engine at every
                // navigation: not a request of the page, but through the
                // page's proxy.
                "--disable-features=PreconnectToSearch",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls (dup2).
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(to_browser_read, 3) < 0 || libc::dup2(from_browser_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("cannot start Chromium");
        // SAFETY: these descriptors are ours and open; each is owned once.
        let (commands, answers) = unsafe {
            libc::close(to_browser_read);
            libc::close(from_browser_write);
            (
                File::from_raw_fd(to_browser_write),
                File::from_raw_fd(from_browser_read),
            )
        };
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answers);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                message.pop();
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    if sender.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        Chromium {
            child,
            commands,
            messages,
            events: VecDeque::new(),
            requests: Vec::new(),
            next_id: 1,
            proxy,
            proxy_port: port,
        }
    }

    /// The first line of every connection the proxy saw.
    pub(crate) fn proxied(&self) -> Vec<String> {
        self.proxy.lock().unwrap().clone()
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .expect("Chromium closed its pipe");
        id
    }

    fn receive(&mut self) -> Value {
        let message = self
            .messages
            .recv_timeout(ANSWER_TIMEOUT)
            .unwrap_or_else(|_| panic!("Chromium did not answer within {ANSWER_TIMEOUT:?}"));
        let text = |pointer: &str| {
            message
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match message.get("method").and_then(Value::as_str) {
            Some("Network.requestWillBeSent") => self.requests.push(Request {
                document: text("/params/documentURL"),
                url: text("/params/request/url"),
                blocked: None,
                session: text("/sessionId"),
                id: text("/params/requestId"),
            }),
            // A request the page's policy (or the browser) stopped never
            // left; DevTools still reports that it began.
            Some("Network.loadingFailed") if !text("/params/blockedReason").is_empty() => {
                let (session, id) = (text("/sessionId"), text("/params/requestId"));
                for request in &mut self.requests {
                    if request.session == session && request.id == id {
                        request.blocked = Some(text("/params/blockedReason"));
                    }
                }
            }
            _ => {}
        }
        if message.get("method").and_then(Value::as_str) == Some("Target.attachedToTarget") {
            // A frame in another process: watch its requests too, then let it run.
            if let Some(session) = message.pointer("/params/sessionId").and_then(Value::as_str) {
                let session = session.to_owned();
                self.send(Some(&session), "Network.enable", json!({}));
                self.send(
                    Some(&session),
                    "Target.setAutoAttach",
                    json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
                );
                self.send(Some(&session), "Runtime.runIfWaitingForDebugger", json!({}));
            }
        }
        message
    }

    /// Calls `method` and returns its result.
    ///
    /// # Panics
    /// When the browser answers with an error.
    pub(crate) fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, params);
        loop {
            let message = self.receive();
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
            if message.get("method").is_some() {
                self.events.push_back(message);
            }
        }
    }

    /// Waits for the event `method` of `session`.
    pub(crate) fn wait_for(&mut self, session: &str, method: &str) -> Value {
        let matches = |message: &Value| {
            message.get("method").and_then(Value::as_str) == Some(method)
                && message.get("sessionId").and_then(Value::as_str) == Some(session)
        };
        if let Some(index) = self.events.iter().position(matches) {
            return self.events.remove(index).unwrap();
        }
        loop {
            let message = self.receive();
            if matches(&message) {
                return message;
            }
        }
    }

    /// Opens a page on `about:blank`, in a browser context of its own whose
    /// every connection goes through the recording proxy, and returns its
    /// session, with the network watched in it and in every frame it
    /// attaches.
    pub(crate) fn new_page(&mut self) -> String {
        let context = self.call(
            None,
            "Target.createBrowserContext",
            json!({
                "proxyServer": format!("http://127.0.0.1:{}", self.proxy_port),
                "proxyBypassList": "<-loopback>",
            }),
        );
        let target = self.call(
            None,
            "Target.createTarget",
            json!({"url": "about:blank", "browserContextId": context["browserContextId"]}),
        );
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        let session = attached["sessionId"].as_str().unwrap().to_owned();
        self.call(Some(&session), "Page.enable", json!({}));
        self.call(Some(&session), "Network.enable", json!({}));
        self.call(
            Some(&session),
            "Target.setAutoAttach",
            json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
        );
        session
    }

    /// Loads `url` in the page of `session` and waits for its load event.
    pub(crate) fn navigate(&mut self, session: &str, url: &str) {
        let result = self.call(Some(session), "Page.navigate", json!({"url": url}));
        assert!(
            result.get("errorText").is_none(),
            "cannot open {url}: {result}"
        );
        self.wait_for(session, "Page.loadEventFired");
    }

    /// Evaluates `expression` in the page and returns its value.
    pub(crate) fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression} threw: {result}"
        );
        result["result"]["value"].clone()
    }

    /// A PNG of the page's viewport.
    pub(crate) fn screenshot(&mut self, session: &str) -> Vec<u8> {
        let result = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        );
        decode_base64(result["data"].as_str().unwrap())
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.send(None, "Browser.close", json!({}));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 to bytes (the protocol's binary data).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |byte: u8| match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {byte}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|&byte| byte != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (index, &digit)| {
                word | u32::from(digit) << (18 - 6 * index)
            });
        out.extend_from_slice(&word.to_be_bytes()[1..chunk.len()]);
    }
    out
}
