//! A local stand-in for API Gateway: plain HTTP in, payload v2.0 events through the
//! function's handler, HTTP out. Lets a real browser use the function.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, json};
use smsreg::wiring::AwsApi;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Serves `api` on a free port of 127.0.0.1 from a thread of its own; returns the base URL.
pub fn serve(api: AwsApi) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            let api = Arc::new(api);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let api = api.clone();
                tokio::spawn(async move { answer(stream, &api).await });
            }
        });
    });
    rx.recv().unwrap()
}

async fn answer(stream: TcpStream, api: &AwsApi) -> Option<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Map::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        if name == "content-length" {
            length = value.trim().parse().ok()?;
        }
        headers.insert(name, value.trim().into());
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": ""},
            "requestId": "local", "stage": "$default", "accountId": "123456789012", "apiId": "local",
            "domainName": "127.0.0.1", "time": "", "timeEpoch": 0
        },
        "body": STANDARD.encode(&body),
        "isBase64Encoded": true,
    });
    let request = lambda_http::request::from_str(&event.to_string()).ok()?;
    let response = api.handle(request).await;
    let mut head = format!("HTTP/1.1 {}\r\n", response.status());
    for (name, value) in response.headers() {
        head.push_str(&format!(
            "{}: {}\r\n",
            name,
            value.to_str().unwrap_or_default()
        ));
    }
    let body: &[u8] = response.body().as_ref();
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut stream = reader.into_inner();
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(body).await.ok()?;
    stream.shutdown().await.ok()
}
