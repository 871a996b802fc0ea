//! The images' HEALTHCHECK: `healthcheck PORT_VARIABLE DEFAULT_PORT` asks the
//! app in its own container for `/healthz` and exits 0 only on a 200. The
//! images have no shell, curl or wget (distroless), so this std-only program,
//! compiled with `rustc` alone in the build stage, is the probe.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [variable, default] = args.as_slice() else {
        eprintln!("usage: healthcheck PORT_VARIABLE DEFAULT_PORT");
        return ExitCode::from(2);
    };
    let port = std::env::var(variable).unwrap_or_else(|_| default.clone());
    match probe(&port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

fn probe(port: &str) -> Result<(), String> {
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|err| format!("{address}: {err}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|err| format!("{address}: {err}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|err| format!("{address}: {err}"))?;
    // "HTTP/1.1 200"
    match &head[9..12] {
        b"200" => Ok(()),
        status => Err(format!(
            "/healthz answered {}",
            String::from_utf8_lossy(status)
        )),
    }
}
