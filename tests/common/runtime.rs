//! A minimal stand-in of the Lambda Runtime API, to run the real `bootstrap` binary as
//! Lambda does: it polls `/runtime/invocation/next` and posts each response back.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct State {
    queued: VecDeque<(String, String)>,
    answers: HashMap<String, Result<String, String>>,
    next_id: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    shared: Arc<Shared>,
    /// Milliseconds each invocation is given, as the function's timeout.
    pub budget_ms: u64,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &str) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

fn serve(stream: TcpStream, shared: Arc<Shared>, budget_ms: u64) {
    let mut writer = stream.try_clone().expect("a second handle on the socket");
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        let path = path.trim_start_matches("/2018-06-01/runtime/");
        if method == "GET" && path == "invocation/next" {
            let mut state = shared.state.lock().unwrap();
            let (id, event) = loop {
                if let Some(next) = state.queued.pop_front() {
                    break next;
                }
                state = shared.changed.wait(state).unwrap();
            };
            drop(state);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let headers = vec![
                ("lambda-runtime-aws-request-id".into(), id.clone()),
                (
                    "lambda-runtime-deadline-ms".into(),
                    (now + budget_ms).to_string(),
                ),
                (
                    "lambda-runtime-invoked-function-arn".into(),
                    "arn:aws:lambda:us-east-1:123456789012:function:smsreg-api".into(),
                ),
                (
                    "lambda-runtime-trace-id".into(),
                    "Root=1-5f84c7a1-0123456789abcdef01234567".into(),
                ),
                ("content-type".into(), "application/json".into()),
            ];
            respond(&mut writer, "200 OK", &headers, &event);
        } else if let Some(rest) = path.strip_prefix("invocation/") {
            let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let answer = if kind == "response" {
                Ok(body)
            } else {
                Err(body)
            };
            shared
                .state
                .lock()
                .unwrap()
                .answers
                .insert(id.to_owned(), answer);
            shared.changed.notify_all();
            respond(&mut writer, "202 Accepted", &[], "{}");
        } else if path == "init/error" {
            shared
                .state
                .lock()
                .unwrap()
                .answers
                .insert("init".into(), Err(body));
            shared.changed.notify_all();
            respond(&mut writer, "202 Accepted", &[], "{}");
        } else {
            respond(&mut writer, "404 Not Found", &[], "{}");
        }
    }
}

impl RuntimeApi {
    pub fn start(budget_ms: u64) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let address = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = accept_shared.clone();
                std::thread::spawn(move || serve(stream, shared, budget_ms));
            }
        });
        RuntimeApi {
            address,
            shared,
            budget_ms,
        }
    }

    /// Environment Lambda gives a function, pointing it at this runtime API.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "smsreg-api".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/smsreg-api".into()),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/24/[$LATEST]0123456789abcdef".into(),
            ),
        ]
    }

    /// Hands `event` to the function and waits for its answer (`Err` for an error report).
    pub fn invoke(&self, event: &str, wait: Duration) -> Result<String, String> {
        let mut state = self.shared.state.lock().unwrap();
        state.next_id += 1;
        let id = format!("invocation-{}", state.next_id);
        state.queued.push_back((id.clone(), event.to_owned()));
        self.shared.changed.notify_all();
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Some(answer) = state.answers.remove(&id) {
                return answer;
            }
            if let Some(Err(e)) = state.answers.get("init") {
                return Err(format!("init error: {e}"));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err("no answer in time".into());
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}
