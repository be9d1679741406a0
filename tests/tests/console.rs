//! The web console (issue 15 §2), in a real browser: Debian's headless `chromium` driven over
//! WebDriver by its `chromedriver` (`make browser` installs both). One test, one browser: the
//! page lists the jobs the API made with the statuses the API gives, shows a job's report
//! summary and failure reasons, confirms, cancels and reprioritises jobs through its own
//! controls (keyboard and mouse), and the API agrees; pages of other origins cannot act.
//!
//! `make screenshots` sets `BATCHOPS_SCREENSHOTS` to `docs/images`, and the test saves the
//! list and a job page there.

use batchops_tests::browser::Browser;
use batchops_tests::{TestStack, copy_job};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `html` to every request on a free port of `host` (a page of another origin).
async fn serve_page(html: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

fn save_screenshot(name: &str, png: &[u8]) {
    if let Ok(dir) = std::env::var("BATCHOPS_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}"), png).unwrap();
        eprintln!("saved {dir}/{name}");
    }
}

/// At a phone's width (390 px) the page needs no sideways scrolling; the window is then made
/// wide again.
async fn fits_a_phone(browser: &Browser, what: &str) {
    browser.resize(390, 844).await.unwrap();
    let widths = browser
        .eval(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            json!([]),
        )
        .await
        .unwrap();
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "{what}: {widths}");
    browser.resize(1280, 800).await.unwrap();
}

async fn status(stack: &TestStack, id: &str) -> String {
    stack.api.describe(id).await.unwrap()["Status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_shows_jobs_as_the_api_does_and_acts_on_them_through_the_api() {
    let stack = TestStack::start().await;
    let base = stack.base_url.clone();

    // ---- Jobs, made through the API ---------------------------------------------------
    let present: Vec<String> = ["a.txt", "b.txt", "c.txt"].map(String::from).to_vec();
    let missing: Vec<String> = ["gone/m1.txt", "gone/m2.txt"].map(String::from).to_vec();
    let seeded = stack.seed(&present, &missing).await;
    let mut body = seeded.copy_job("AllTasks");
    body["Description"] = "copy with two missing objects".into();
    let c = stack.api.create(&body).await.unwrap();

    let waiting = stack.seed(&present, &[]).await;
    let mut suspended = Vec::new();
    for name in ["first to confirm", "second to cancel"] {
        let mut body = waiting.copy_job("AllTasks");
        body["ConfirmationRequired"] = true.into();
        body["Description"] = name.into();
        suspended.push(stack.api.create(&body).await.unwrap());
    }
    let (s1, s2) = (suspended[0].clone(), suspended[1].clone());
    let mut body = copy_job(
        &seeded.source,
        "m.csv",
        Some("0123456789abcdef0123456789abcdef"),
        &seeded.target,
        &seeded.target,
        "AllTasks",
    );
    body["Description"] = "a manifest whose ETag is wrong".into();
    let f = stack.api.create(&body).await.unwrap();

    for id in [&s1, &s2] {
        stack.until(id, 60, |j| j["Status"] == "Suspended").await;
    }
    let c_job = stack.wait(&c, Duration::from_secs(120)).await;
    assert_eq!(c_job["Status"], "Complete", "{c_job}");
    let f_job = stack.wait(&f, Duration::from_secs(120)).await;
    assert_eq!(f_job["Status"], "Failed", "{f_job}");
    let ids: BTreeSet<String> = [&c, &s1, &s2, &f].map(|s| s.to_string()).into();

    let browser = Browser::start(1280, 800).await.expect("start the browser");

    // ---- The list shows every job with the API's status ------------------------------
    browser.goto(&format!("{base}/console")).await.unwrap();
    let rows_script = "const rows = [...document.querySelectorAll('#jobs tbody tr[data-job]')]; \
         return rows.length >= arguments[0] ? rows.map(r => [r.dataset.job, \
         r.querySelector('[data-status]').dataset.status, \
         r.querySelector('[data-status]').textContent.trim(), \
         r.querySelector('[data-role=progress-text]').textContent]) : null";
    let rows = browser
        .until("four rows", 30, &rows_script.replace("arguments[0]", "4"))
        .await
        .unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in rows {
        let id = row[0].as_str().unwrap();
        assert!(ids.contains(id), "{id}");
        let api_status = status(&stack, id).await;
        assert_eq!(row[1], api_status.as_str(), "{row:?}");
        // The status is a word on the badge, not a colour alone.
        assert!(row[2].as_str().unwrap().ends_with(&api_status), "{row:?}");
        if id == c {
            assert_eq!(row[3], "5 / 5 (100%)", "{row:?}");
        }
    }
    save_screenshot("console-list.png", &browser.screenshot().await.unwrap());

    // Accessibility basics: one h1, a language, every control named; no sideways scrolling
    // on a phone.
    let named = browser
        .eval(
            "return [document.documentElement.lang, document.querySelectorAll('h1').length, \
             [...document.querySelectorAll('button, input, select, a[href]')].filter(e => \
               !((e.labels && e.labels.length) || e.getAttribute('aria-label') || \
                 e.textContent.trim() || (e.closest('label') && e.closest('label').textContent.trim()))) \
               .map(e => e.outerHTML)]",
            json!([]),
        )
        .await
        .unwrap();
    assert_eq!(named, json!(["en", 1, []]), "unnamed controls");
    fits_a_phone(&browser, "the list").await;

    // The status filter, through its own controls.
    browser.click("input[value=Suspended]").await.unwrap();
    browser
        .click("form.filters button[type=submit]")
        .await
        .unwrap();
    let filtered = browser
        .until(
            "the Suspended filter",
            30,
            "const rows = [...document.querySelectorAll('#jobs tbody tr[data-job]')]; \
             return location.hash.includes('Suspended') && rows.length === 2 \
               ? rows.map(r => r.dataset.job).sort() : null",
        )
        .await
        .unwrap();
    let mut want = vec![s1.clone(), s2.clone()];
    want.sort();
    assert_eq!(filtered, json!(want));

    // Pages of two: "Older" shows the other two.
    browser
        .goto(&format!("{base}/console#/?max=2"))
        .await
        .unwrap();
    let page = "const rows = [...document.querySelectorAll('#jobs tbody tr[data-job]')]; \
         return rows.length === 2 ? rows.map(r => r.dataset.job) : null";
    let first = browser.until("page one", 30, page).await.unwrap();
    browser
        .until(
            "an Older button",
            30,
            "return [...document.querySelectorAll('.pager button')].some(b => b.textContent === 'Older')",
        )
        .await
        .unwrap();
    browser
        .eval(
            "[...document.querySelectorAll('.pager button')].find(b => b.textContent === 'Older').id = 'older'",
            json!([]),
        )
        .await
        .unwrap();
    browser.click("#older").await.unwrap();
    let second = browser
        .until(
            "page two",
            30,
            &format!(
                "const rows = [...document.querySelectorAll('#jobs tbody tr[data-job]')]; \
                 return location.hash.includes('token') && rows.length === 2 && \
                   !rows.some(r => {first}.includes(r.dataset.job)) ? rows.map(r => r.dataset.job) : null"
            ),
        )
        .await
        .unwrap();
    let seen: BTreeSet<String> = first
        .as_array()
        .unwrap()
        .iter()
        .chain(second.as_array().unwrap())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ids);

    // ---- A job's page: the report summary and failure reasons ------------------------
    browser.goto(&format!("{base}/console")).await.unwrap();
    browser
        .until("four rows", 30, &rows_script.replace("arguments[0]", "4"))
        .await
        .unwrap();
    browser
        .click(&format!("a[href=\"#/jobs/{c}\"]"))
        .await
        .unwrap();
    let report = browser
        .until(
            "C's report summary",
            30,
            "const r = document.querySelector('#report'); if (!r) return null; \
             const text = (css) => r.querySelector(css)?.textContent; \
             return {location: text('dd'), \
               succeeded: text('#by-status tr[data-status=succeeded] td.num'), \
               failed: text('#by-status tr[data-status=failed] td.num'), \
               codes: [...r.querySelectorAll('#by-code tr[data-code]')].map(t => [t.dataset.code, t.querySelector('td.num').textContent]), \
               keys: [...r.querySelectorAll('#first-failures tr[data-key]')].map(t => t.dataset.key).sort()}",
        )
        .await
        .unwrap();
    assert_eq!(
        report,
        json!({
            "location": format!("arn:aws:s3:::{}/reports/job-{c}/manifest.json", seeded.target),
            "succeeded": "3", "failed": "2",
            "codes": [["NoSuchKey", "2"]],
            "keys": missing,
        })
    );
    assert_eq!(
        report["location"], c_job["ReportSummary"]["ManifestArn"],
        "the page shows what the API says"
    );
    // The whole page, report tables included.
    browser.resize(1280, 1500).await.unwrap();
    save_screenshot("console-job.png", &browser.screenshot().await.unwrap());
    fits_a_phone(&browser, "a job page").await;

    browser
        .goto(&format!("{base}/console#/jobs/{f}"))
        .await
        .unwrap();
    let code = browser
        .until(
            "F's failure code",
            30,
            "const c = document.querySelector('[data-role=failure-code]'); return c && c.textContent",
        )
        .await
        .unwrap();
    assert_eq!(code, f_job["FailureReasons"][0]["FailureCode"], "{f_job}");

    // ---- Pages of other origins cannot act ---------------------------------------------
    // A text/plain form posts `name=value`: with the `=` inside Description's string the body
    // is a complete CreateJob. Sent without a browser's marks, that body does make a job.
    let create = serde_json::to_string(&json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "by", "Value": "another-site"}]}},
        "Manifest": c_job["Manifest"].clone(),
        "Report": {"Enabled": false},
        "Priority": 1,
        "Description": "forged",
    }))
    .unwrap();
    let (head, tail) = create.split_at(create.find("forged").unwrap() + 3);
    let form_name = head.to_string();
    let form_value = tail.to_string();
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let made = plain
        .post(format!("{base}/jobs"))
        .header("content-type", "text/plain")
        .body(format!("{form_name}={form_value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200, "the forged body is a valid CreateJob");
    let jobs_before = stack.api.list(&[], Some(1000), None).await.unwrap()["Jobs"]
        .as_array()
        .unwrap()
        .len();
    let attack = format!(
        r#"<!doctype html><html><body><iframe name="sink"></iframe><script>
(async () => {{
  const base = "{base}";
  const out = [];
  try {{ await fetch(base + "/jobs/{s2}/status", {{method: "POST", mode: "no-cors",
      headers: {{"content-type": "text/plain"}}, body: JSON.stringify({{RequestedJobStatus: "Cancelled"}})}});
    out.push("post-sent"); }} catch (e) {{ out.push("post-failed"); }}
  try {{ const r = await fetch(base + "/jobs"); out.push("read-" + r.status); }}
  catch (e) {{ out.push("read-blocked"); }}
  try {{ await fetch(base + "/jobs", {{method: "POST", mode: "no-cors",
      headers: {{"content-type": "text/plain"}}, body: FORM_NAME + "=" + FORM_VALUE}});
    out.push("create-sent"); }} catch (e) {{ out.push("create-failed"); }}
  const form = document.createElement("form");
  form.method = "POST"; form.action = base + "/jobs"; form.enctype = "text/plain"; form.target = "sink";
  const field = document.createElement("input");
  field.name = FORM_NAME;
  field.value = FORM_VALUE;
  form.append(field); document.body.append(form); form.submit();
  await new Promise(r => setTimeout(r, 1500));
  document.title = "done " + out.join(" ");
}})();
</script></body></html>"#
    );
    let attack = attack
        .replace("FORM_NAME", &serde_json::to_string(&form_name).unwrap())
        .replace("FORM_VALUE", &serde_json::to_string(&form_value).unwrap());
    let port = serve_page(attack).await;
    // `localhost` is another site than 127.0.0.1; another port of 127.0.0.1 is the same site
    // but another origin.
    for page in [
        format!("http://localhost:{port}/"),
        format!("http://127.0.0.1:{port}/"),
    ] {
        browser.goto(&page).await.unwrap();
        let title = browser
            .until(
                "the attack page to finish",
                30,
                "return document.title.startsWith('done') && document.title",
            )
            .await
            .unwrap();
        // The requests went out (a no-cors request always "succeeds" for the page); the read
        // fails because no CORS header is ever sent.
        let title = title.as_str().unwrap();
        assert!(
            title.contains("post-sent")
                && title.contains("create-sent")
                && title.contains("read-blocked"),
            "{page}: {title}"
        );
    }
    assert_eq!(
        status(&stack, &s2).await,
        "Suspended",
        "no other page cancelled it"
    );
    assert_eq!(
        stack.api.list(&[], Some(1000), None).await.unwrap()["Jobs"]
            .as_array()
            .unwrap()
            .len(),
        jobs_before,
        "no other page made a job"
    );

    // ---- Confirm S1 with the keyboard; it runs and the page follows it ---------------
    browser
        .goto(&format!("{base}/console#/jobs/{s1}"))
        .await
        .unwrap();
    let offered = browser
        .until(
            "S1's actions",
            30,
            "const b = [...document.querySelectorAll('#actions button[data-action]')]; \
             return b.length ? b.map(x => x.dataset.action) : null",
        )
        .await
        .unwrap();
    assert_eq!(
        offered,
        json!(["Ready", "Cancelled"]),
        "no Pause while Suspended"
    );
    let mut focused = false;
    for _ in 0..20 {
        browser.press("\u{E004}").await.unwrap();
        let on = browser
            .eval(
                "return document.activeElement && document.activeElement.dataset.action || null",
                json!([]),
            )
            .await
            .unwrap();
        if on == "Ready" {
            focused = true;
            break;
        }
    }
    assert!(focused, "Tab reaches Confirm");
    browser.press("\u{E007}").await.unwrap();
    browser
        .until(
            "S1 to run to its end on the page, without a reload",
            120,
            "const s = document.querySelector('.head [data-status]'); \
             const p = document.querySelector('#h-progress') && document.querySelector('.big [data-role=progress-text]'); \
             return s && s.dataset.status === 'Complete' && p && p.textContent === '3 / 3 (100%)'",
        )
        .await
        .unwrap();
    let s1_job = stack.api.describe(&s1).await.unwrap();
    assert_eq!(s1_job["Status"], "Complete", "{s1_job}");
    assert!(s1_job["Audit"]["Confirmed"].is_object(), "{s1_job}");
    assert_eq!(s1_job["StatusUpdateReason"], "confirmed in the console");

    // ---- Cancel S2 with the mouse, through the confirmation dialog -------------------
    browser
        .goto(&format!("{base}/console#/jobs/{s2}"))
        .await
        .unwrap();
    browser
        .until(
            "S2's Cancel button",
            30,
            "return !!document.querySelector('#actions button[data-action=Cancelled]')",
        )
        .await
        .unwrap();
    browser
        .click("#actions button[data-action=Cancelled]")
        .await
        .unwrap();
    browser
        .until(
            "the dialog",
            10,
            "const d = document.querySelector('dialog'); return d && d.open",
        )
        .await
        .unwrap();
    assert_eq!(status(&stack, &s2).await, "Suspended", "asked first");
    browser.click("dialog button.danger").await.unwrap();
    browser
        .until(
            "S2 cancelled on the page",
            30,
            "const s = document.querySelector('.head [data-status]'); return s && s.dataset.status === 'Cancelled'",
        )
        .await
        .unwrap();
    assert_eq!(status(&stack, &s2).await, "Cancelled");

    // ---- Priority -------------------------------------------------------------------
    browser
        .goto(&format!("{base}/console#/jobs/{c}"))
        .await
        .unwrap();
    browser
        .until(
            "the priority field",
            30,
            "return !!document.querySelector('#priority')",
        )
        .await
        .unwrap();
    browser.type_into("#priority", "42").await.unwrap();
    browser
        .click("#actions form button[type=submit]")
        .await
        .unwrap();
    let mut priority = Value::Null;
    for _ in 0..100 {
        priority = stack.api.describe(&c).await.unwrap()["Priority"].clone();
        if priority == 42 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(priority, 42);

    browser.close().await.unwrap();
    stack.dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_three_static_files_under_a_strict_content_security_policy() {
    let stack = TestStack::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        // Typed or bookmarked (Sec-Fetch-Site: none) it opens; linked or framed from another
        // site it does not.
        let open = |site: &'static str| {
            http.get(format!("{}{path}", stack.base_url))
                .header("sec-fetch-site", site)
                .send()
        };
        assert_eq!(open("cross-site").await.unwrap().status(), 403, "{path}");
        let r = open("none").await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    }
    let r = http
        .get(format!("{}/console/nope.js", stack.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The same-origin exception is for the page's own origin only.
    let post = |origin: String| {
        http.post(format!("{}/jobs", stack.base_url))
            .header("origin", origin)
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    let own = post(stack.base_url.clone()).await.unwrap();
    assert_eq!(
        own.status(),
        400,
        "judged as a request (an empty CreateJob)"
    );
    let port = stack.base_url.rsplit(':').next().unwrap();
    let other = post(format!("http://localhost:{port}")).await.unwrap();
    assert_eq!(other.status(), 403);
    stack.dev.stop().await;
}
