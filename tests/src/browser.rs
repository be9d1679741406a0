//! A small W3C WebDriver client, enough to drive the web console in Debian's headless
//! `chromium` through its `chromedriver` (`make browser` installs both; nothing is downloaded
//! at run time). Over `reqwest`: the WebDriver crates either carry licences `deny.toml`
//! refuses or take minutes to build.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The chromedriver and chromium binaries: `$BATCHOPS_CHROMEDRIVER` / `$BATCHOPS_CHROMIUM`,
/// else Debian's paths.
pub fn binaries() -> (String, String) {
    let get = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into());
    (
        get("BATCHOPS_CHROMEDRIVER", "/usr/bin/chromedriver"),
        get("BATCHOPS_CHROMIUM", "/usr/bin/chromium"),
    )
}

/// A chromedriver process and one browser session; both end when it is dropped (the driver
/// runs in a process group of its own, killed whole, so a failed test leaves no browser).
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.driver.id()))
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless session
    /// `width`×`height` pixels.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        let (driver_bin, chromium) = binaries();
        anyhow::ensure!(
            std::path::Path::new(&driver_bin).exists() && std::path::Path::new(&chromium).exists(),
            "no browser: {driver_bin} or {chromium} is missing; run `make browser` (or set \
             BATCHOPS_CHROMEDRIVER and BATCHOPS_CHROMIUM)"
        );
        // A free port, picked and then given to chromedriver: another process may take it in
        // between, so a driver that does not come up is tried again on another.
        let mut started = None;
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            use std::os::unix::process::CommandExt;
            let driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {driver_bin}"))?;
            let http = reqwest::Client::builder().no_proxy().build()?;
            let browser = Self {
                http,
                session: String::new(),
                driver,
            };
            let base = format!("http://127.0.0.1:{port}");
            for _ in 0..100 {
                if let Ok(r) = browser.http.get(format!("{base}/status")).send().await
                    && r.status().is_success()
                {
                    started = Some((browser, base));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if started.is_some() {
                break;
            }
        }
        let (mut browser, base) =
            started.ok_or_else(|| anyhow!("chromedriver did not start (3 ports tried)"))?;
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-proxy-server".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
        ];
        let answer: Value = browser
            .http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}}))
            .send()
            .await?
            .json()
            .await?;
        let id = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session: {answer}"))?;
        browser.session = format!("{base}/session/{id}");
        Ok(browser)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method.clone(), &url);
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let answer: Value = request.send().await?.json().await?;
        let value = answer["value"].clone();
        if let Some(e) = value.get("error") {
            bail!("WebDriver {path}: {e}: {}", value["message"]);
        }
        Ok(value)
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await
            .map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn eval(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Evaluates `script` until it returns something other than `null`/`false`, for at most
    /// `secs` seconds; returns that value.
    pub async fn until(&self, what: &str, secs: u64, script: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.eval(script, json!([])).await?;
            if !(v.is_null() || v == Value::Bool(false)) {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                let text = self
                    .eval("return document.body.innerText", json!([]))
                    .await
                    .unwrap_or_default();
                bail!("waited {secs} s for {what}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The element a CSS selector finds first.
    pub async fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
            .with_context(|| format!("finding {css}"))?;
        v[ELEMENT]
            .as_str()
            .map(String::from)
            .ok_or_else(|| anyhow!("no element id for {css}: {v}"))
    }

    /// A real click (the pointer at the element's centre), as a user's.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let id = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// Types into an element (focused first).
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let id = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await
        .map(drop)
    }

    /// Presses keys on the keyboard, one after another, wherever the focus is (WebDriver's
    /// key codes: `\u{E004}` Tab, `\u{E007}` Enter).
    pub async fn press(&self, keys: &str) -> anyhow::Result<()> {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await
        .map(drop)
    }

    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await
        .map(drop)
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let v = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await?;
        let b64 = v.as_str().ok_or_else(|| anyhow!("no screenshot"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
    }

    /// Ends the session (the driver ends on drop).
    pub async fn close(self) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, "", json!({}))
            .await
            .map(drop)
    }
}
