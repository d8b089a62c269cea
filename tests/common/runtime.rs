//! A minimal stand-in of the Lambda Runtime API, to run the real `bootstrap` binary as
//! Lambda does: it polls `/runtime/invocation/next` and posts each response back.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::http1::{read_request, respond};

#[derive(Default)]
struct State {
    queued: VecDeque<(String, String)>,
    /// Answers by invocation id (`init` for an init error), with when they came.
    answers: HashMap<String, (Instant, Result<String, String>)>,
    first_poll: Option<Instant>,
    next_id: u64,
    /// The invocations handed out and not answered yet: the listener (slot) whose function
    /// took each, and its deadline.
    in_flight: HashMap<String, (usize, Instant)>,
    /// Invocations answered after their deadline: on AWS, Lambda would have ended them
    /// there (a batch returned whole, its SMS perhaps sent twice).
    overruns: Vec<Duration>,
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
    /// Listeners made so far (slot 0 is `address`).
    listeners: std::sync::atomic::AtomicUsize,
}

/// Serves the Runtime API on `listener`, each connection as `slot`.
fn listen(listener: TcpListener, shared: Arc<Shared>, budget_ms: u64, slot: usize) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let shared = shared.clone();
            std::thread::spawn(move || serve(stream, shared, budget_ms, slot));
        }
    });
}

impl Shared {
    fn enqueue(&self, event: &str) -> String {
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = format!("invocation-{}", state.next_id);
        state.queued.push_back((id.clone(), event.to_owned()));
        self.changed.notify_all();
        id
    }

    fn wait(&self, id: &str, wait: Duration) -> Result<String, String> {
        let deadline = Instant::now() + wait;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some((_, answer)) = state.answers.remove(id) {
                return answer;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("no answer in time".into());
            }
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    fn answer(&self, id: &str, answer: Result<String, String>) {
        let at = Instant::now();
        let mut state = self.state.lock().unwrap();
        if let Some((_, deadline)) = state.in_flight.remove(id)
            && at > deadline
        {
            state.overruns.push(at.duration_since(deadline));
        }
        state.answers.insert(id.to_owned(), (at, answer));
        self.changed.notify_all();
    }

    /// Blocks until an event is queued, noting the function's first poll.
    fn next(&self) -> (String, String) {
        let mut state = self.state.lock().unwrap();
        state.first_poll.get_or_insert_with(Instant::now);
        loop {
            if let Some(next) = state.queued.pop_front() {
                return next;
            }
            state = self.changed.wait(state).unwrap();
        }
    }
}

fn serve(stream: TcpStream, shared: Arc<Shared>, budget_ms: u64, slot: usize) {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().expect("a second handle on the socket");
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        // The Invoke API (what `cargo lambda invoke` and the local mapping call): queues the
        // event for the function's next poll and answers with its response.
        if request.method == "POST"
            && request.path.starts_with("/2015-03-31/functions/")
            && request.path.ends_with("/invocations")
        {
            let id = shared.enqueue(&request.text());
            let answer = shared.wait(&id, Duration::from_secs(120));
            let open = match answer {
                Ok(body) => respond(
                    &mut writer,
                    "200 OK",
                    &[("content-type", "application/json")],
                    body.as_bytes(),
                ),
                Err(error) => respond(
                    &mut writer,
                    "200 OK",
                    &[
                        ("content-type", "application/json"),
                        ("x-amz-function-error", "Unhandled"),
                    ],
                    error.as_bytes(),
                ),
            };
            if !open {
                return;
            }
            continue;
        }
        let path = request.path.trim_start_matches("/2018-06-01/runtime/");
        let accepted = |writer: &mut TcpStream| respond(writer, "202 Accepted", &[], b"{}");
        let open = if request.method == "GET" && path == "invocation/next" {
            let (id, event) = shared.next();
            shared.state.lock().unwrap().in_flight.insert(
                id.clone(),
                (slot, Instant::now() + Duration::from_millis(budget_ms)),
            );
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let deadline = (now + budget_ms).to_string();
            let headers = [
                ("lambda-runtime-aws-request-id", id.as_str()),
                ("lambda-runtime-deadline-ms", deadline.as_str()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:smsreg-api",
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-5f84c7a1-0123456789abcdef01234567",
                ),
                ("content-type", "application/json"),
            ];
            respond(&mut writer, "200 OK", &headers, event.as_bytes())
        } else if let Some(rest) = path.strip_prefix("invocation/") {
            let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let body = request.text();
            shared.answer(
                id,
                if kind == "response" {
                    Ok(body)
                } else {
                    Err(body)
                },
            );
            accepted(&mut writer)
        } else if path == "init/error" {
            shared.answer("init", Err(request.text()));
            accepted(&mut writer)
        } else {
            respond(&mut writer, "404 Not Found", &[], b"{}")
        };
        if !open {
            return;
        }
    }
}

impl RuntimeApi {
    pub fn start(budget_ms: u64) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let address = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        listen(listener, shared.clone(), budget_ms, 0);
        RuntimeApi {
            address,
            shared,
            budget_ms,
            listeners: std::sync::atomic::AtomicUsize::new(1),
        }
    }

    /// Another address of the same Runtime API (the same invocations), for one function
    /// process: what that process takes is known as its `slot`. Returns (slot, address).
    pub fn listener(&self) -> (usize, String) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let address = listener.local_addr().unwrap().to_string();
        let slot = self
            .listeners
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        listen(listener, self.shared.clone(), self.budget_ms, slot);
        (slot, address)
    }

    /// Ends every invocation past its deadline as Lambda does: answered with a timeout
    /// error, counted as an overrun. Returns the slots whose process must be killed and
    /// started afresh.
    pub fn expire(&self) -> Vec<usize> {
        let now = Instant::now();
        let expired: Vec<(String, usize, Instant)> = {
            let state = self.shared.state.lock().unwrap();
            state
                .in_flight
                .iter()
                .filter(|(_, (_, deadline))| now > *deadline)
                .map(|(id, (slot, deadline))| (id.clone(), *slot, *deadline))
                .collect()
        };
        let mut slots = Vec::new();
        for (id, slot, deadline) in expired {
            {
                let mut state = self.shared.state.lock().unwrap();
                if state.in_flight.remove(&id).is_none() {
                    continue; // answered meanwhile
                }
                state.overruns.push(now.duration_since(deadline));
            }
            self.shared.answer(
                &id,
                Err(format!("Task timed out after {} ms", self.budget_ms)),
            );
            slots.push(slot);
        }
        slots
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

    /// Queues an event for the function's next poll; returns its invocation id.
    pub fn enqueue(&self, event: &str) -> String {
        self.shared.enqueue(event)
    }

    /// The Invoke API URL of the function(s) polling this runtime API.
    pub fn invoke_url(&self, function: &str) -> String {
        format!(
            "http://{}/2015-03-31/functions/{function}/invocations",
            self.address
        )
    }

    /// Waits for the answer to `id`: when it came, and the body (`Err` for an error report,
    /// an init error, or no answer within `wait`).
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

    /// Hands `event` to the function and waits for its answer (`Err` for an error report).
    pub fn invoke(&self, event: &str, wait: Duration) -> Result<String, String> {
        let id = self.enqueue(event);
        self.wait(&id, wait).1
    }

    /// How far past its deadline each late invocation answered (none is late on a
    /// function that keeps its deadline), and those still unanswered past theirs.
    pub fn overruns(&self) -> Vec<Duration> {
        let state = self.shared.state.lock().unwrap();
        let now = Instant::now();
        let mut late = state.overruns.clone();
        late.extend(
            state
                .in_flight
                .values()
                .filter(|(_, d)| now > *d)
                .map(|(_, d)| now.duration_since(*d)),
        );
        late
    }

    /// When the function first polled for an invocation: the end of its init.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.state.lock().unwrap().first_poll
    }
}
