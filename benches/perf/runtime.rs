//! A minimal Lambda Runtime API stand-in: hands queued events to `/invocation/next`,
//! collects what is posted back, and notes when the function first asked for work.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct State {
    queued: VecDeque<(String, String)>,
    answers: HashMap<String, (Instant, Result<String, String>)>,
    first_poll: Option<Instant>,
    next_id: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

pub struct RuntimeApi {
    pub address: String,
    shared: Arc<Shared>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &str) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    let _ = stream.write_all(head.as_bytes());
}

fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().expect("a second handle on the socket");
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        let path = path.trim_start_matches("/2018-06-01/runtime/");
        if method == "GET" && path == "invocation/next" {
            let mut state = shared.state.lock().unwrap();
            state.first_poll.get_or_insert_with(Instant::now);
            let (id, event) = loop {
                if let Some(next) = state.queued.pop_front() {
                    break next;
                }
                state = shared.changed.wait(state).unwrap();
            };
            drop(state);
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let headers = vec![
                ("lambda-runtime-aws-request-id".into(), id),
                (
                    "lambda-runtime-deadline-ms".into(),
                    (now_ms + 30_000).to_string(),
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
            let at = Instant::now();
            shared
                .state
                .lock()
                .unwrap()
                .answers
                .insert(id.to_owned(), (at, answer));
            shared.changed.notify_all();
            respond(&mut writer, "202 Accepted", &[], "{}");
        } else if path == "init/error" {
            let at = Instant::now();
            shared
                .state
                .lock()
                .unwrap()
                .answers
                .insert("init".into(), (at, Err(body)));
            shared.changed.notify_all();
            respond(&mut writer, "202 Accepted", &[], "{}");
        } else {
            respond(&mut writer, "404 Not Found", &[], "{}");
        }
    }
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let address = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = accept_shared.clone();
                std::thread::spawn(move || serve(stream, shared));
            }
        });
        RuntimeApi { address, shared }
    }

    /// The environment Lambda gives a function, pointing it at this runtime API.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "smsreg-api".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/smsreg-api".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ]
    }

    /// Queues an event; returns its id.
    pub fn enqueue(&self, event: &str) -> String {
        let mut state = self.shared.state.lock().unwrap();
        state.next_id += 1;
        let id = format!("invocation-{}", state.next_id);
        state.queued.push_back((id.clone(), event.to_owned()));
        self.shared.changed.notify_all();
        id
    }

    /// Waits for the answer to `id`: when it came, and the body (`Err` for an error report).
    pub fn wait(&self, id: &str, wait: Duration) -> (Instant, Result<String, String>) {
        let deadline = Instant::now() + wait;
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if let Some(answer) = state.answers.remove(id) {
                return answer;
            }
            if let Some((at, Err(e))) = state.answers.get("init") {
                return (*at, Err(format!("init error: {e}")));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (Instant::now(), Err("no answer in time".into()));
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// When the function first polled for an invocation: the end of its init.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.state.lock().unwrap().first_poll
    }
}
