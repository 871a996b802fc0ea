//! A loopback HTTP server standing in for GitHub's K3s release downloads and
//! get.k3s.io, so no test ever fetches K3s from the internet: the release
//! cache's own tests drive it, and every fake-vagrant sandbox points `create`
//! at one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// The release served: the default one, which every sandbox's `create` fetches.
pub const VERSION: &str = orchestrator::config::DEFAULT_K3S_VERSION;
pub const BINARY: &[u8] = b"\x7fELF a K3s binary, as far as this test cares";
pub const INSTALLER: &[u8] = b"#!/bin/sh\necho the K3s installer\n";

/// What the server answers for a path.
#[derive(Clone)]
pub enum Answer {
    Body(Vec<u8>),
    /// Announces `length` bytes, sends the body, then closes: a cut transfer.
    Cut {
        body: Vec<u8>,
        length: usize,
    },
    NotFound,
}

#[derive(Clone, Default)]
pub struct Server {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Serves the release and the installer the way the real servers lay them out.
    pub fn start() -> (Server, String) {
        let server = Server::default();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handler = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                // The headers: read up to the blank line.
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap() > 2 {
                    header.clear();
                }
                handler.requests.lock().unwrap().push(path.clone());
                let answer = handler.answers.lock().unwrap().get(&path).cloned();
                let (status, body, length) = match answer.unwrap_or(Answer::NotFound) {
                    Answer::Body(body) => ("200 OK", body.clone(), body.len()),
                    Answer::Cut { body, length } => ("200 OK", body, length),
                    Answer::NotFound => ("404 Not Found", b"not found".to_vec(), 9),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        for binary in BINARIES {
            server.answer(&asset(binary), Answer::Body(BINARY.to_vec()));
        }
        let sums = format!(
            "{}  k3s-airgap-images-amd64.tar\n{}  k3s\n",
            "0".repeat(64),
            sha256(BINARY)
        );
        server.answer(
            &asset("sha256sum-amd64.txt"),
            Answer::Body(sums.clone().into()),
        );
        server.answer(
            &asset("sha256sum-arm64.txt"),
            Answer::Body(sums.replace("  k3s\n", "  k3s-arm64\n").into()),
        );
        server.answer("/install.sh", Answer::Body(INSTALLER.to_vec()));
        (server, base)
    }

    pub fn answer(&self, path: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(path.into(), answer);
    }

    /// The paths requested since the last call.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// The binaries of the release, one per CPU the tests may run on.
pub const BINARIES: [&str; 2] = ["k3s", "k3s-arm64"];

/// The server's path of one of the release's files, as GitHub lays them out.
pub fn asset(name: &str) -> String {
    format!("/releases/{}/{name}", VERSION.replace('+', "%2B"))
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
