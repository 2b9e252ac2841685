//! A real SMTP listener on loopback that accepts every message and hands it to the test.
//! It speaks enough of RFC 5321 for a client without TLS or authentication.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub struct SmtpSink {
    pub url: String,
    messages: mpsc::UnboundedReceiver<String>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP ready\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink\r\n",
                            "DATA" => {
                                let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                                let mut message = String::new();
                                while let Ok(Some(data)) = lines.next_line().await {
                                    if data == "." {
                                        break;
                                    }
                                    message.push_str(&data);
                                    message.push('\n');
                                }
                                let _ = tx.send(message);
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        SmtpSink {
            url: format!("smtp://127.0.0.1:{port}"),
            messages: rx,
        }
    }

    /// The next delivered message (waits for it).
    pub async fn next_message(&mut self) -> String {
        self.messages.recv().await.expect("a message")
    }

    /// The six-digit code in the next message.
    pub async fn next_code(&mut self) -> String {
        let message = self.next_message().await;
        message
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap_or_else(|| panic!("no code in {message}"))
            .to_owned()
    }
}
