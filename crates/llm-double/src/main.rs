//! `sage-llm-double --port N [--api-key K] [--model M]…`: the scripted OpenAI-compatible
//! server with its deterministic default replies, for demos and benchmarks.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = 0u16;
    let mut key = None;
    let mut models: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned();
        match (args[i].as_str(), value) {
            ("--port", Some(v)) => match v.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("sage-llm-double: --port takes a number");
                    return ExitCode::from(2);
                }
            },
            ("--api-key", Some(v)) => key = Some(v),
            ("--model", Some(v)) => models.push(v),
            _ => {
                eprintln!("usage: sage-llm-double --port N [--api-key K] [--model M]…");
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    let models: Vec<&str> = models.iter().map(String::as_str).collect();
    match llm_double::LlmDouble::start_on(port, key.as_deref(), &models).await {
        Ok(double) => {
            println!("sage-llm-double listening on {}", double.base_url);
            let _ = tokio::signal::ctrl_c().await;
            double.stop().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sage-llm-double: cannot listen: {e}");
            ExitCode::from(1)
        }
    }
}
