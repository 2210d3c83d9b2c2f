//! A closed-loop load generator: a fixed number of tasks, each sending its next request as soon
//! as the previous one was answered (keep-alive, one connection per task), for a warm-up and then
//! a fixed measured window. Every operation's sample is kept, so percentiles are exact.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// One kind of request (or sequence of requests) that a load task repeats.
pub trait Op: Send + 'static {
    /// What one successful run measured (a latency, or several for a multi-step flow).
    type Sample: Send + 'static;
    fn run(&mut self) -> impl Future<Output = anyhow::Result<Self::Sample>> + Send;
}

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub warmup: Duration,
    pub measure: Duration,
}

pub struct Outcome<S> {
    /// Runs that started inside the measured window and succeeded.
    pub samples: Vec<S>,
    /// Every successful run, warm-up included: what the watched CPU time was spent on.
    pub runs: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub window: Duration,
}

impl<S> Outcome<S> {
    pub fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.window.as_secs_f64()
    }

    /// A scenario that failed even once is not a measurement of the happy path.
    pub fn check(&self, scenario: &str) -> anyhow::Result<()> {
        match &self.first_error {
            Some(error) => anyhow::bail!("{scenario}: {} runs failed, the first with: {error}", self.errors),
            None if self.samples.is_empty() => anyhow::bail!("{scenario}: no run completed in the window"),
            None => Ok(()),
        }
    }
}

/// Runs every op in its own task until the window closes. Runs started during the warm-up are
/// discarded; a run that starts before the window closes is waited for.
pub async fn drive<O: Op>(ops: Vec<O>, plan: Plan) -> anyhow::Result<Outcome<O::Sample>> {
    let measure_from = Instant::now() + plan.warmup;
    let until = measure_from + plan.measure;
    let tasks: Vec<_> = ops.into_iter().map(|op| tokio::spawn(repeat(op, measure_from, until))).collect();
    let mut outcome = Outcome { samples: Vec::new(), runs: 0, errors: 0, first_error: None, window: plan.measure };
    for task in tasks {
        let part = task.await?;
        outcome.samples.extend(part.samples);
        outcome.runs += part.runs;
        outcome.errors += part.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = part.first_error;
        }
    }
    Ok(outcome)
}

async fn repeat<O: Op>(mut op: O, measure_from: Instant, until: Instant) -> Outcome<O::Sample> {
    let mut outcome =
        Outcome { samples: Vec::new(), runs: 0, errors: 0, first_error: None, window: until - measure_from };
    loop {
        let started = Instant::now();
        if started >= until {
            return outcome;
        }
        let result = op.run().await;
        match result {
            // Warm-up runs fill caches and pools; they are not measured.
            Ok(_) if started < measure_from => outcome.runs += 1,
            Ok(sample) => {
                outcome.runs += 1;
                outcome.samples.push(sample);
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// A loopback client with keep-alive that never follows redirects and never uses a proxy from
/// the environment (all traffic must stay on 127.0.0.1).
pub fn client(cookies: bool) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(cookies)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// One request repeated: its latency is until the whole body has been read.
#[derive(Clone)]
pub struct Request {
    pub client: reqwest::Client,
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub expect: StatusCode,
}

impl Request {
    pub fn get(client: reqwest::Client, url: String) -> Self {
        Self { client, method: Method::GET, url, headers: HeaderMap::new(), expect: StatusCode::OK }
    }

    pub fn post(client: reqwest::Client, url: String) -> Self {
        Self { method: Method::POST, ..Self::get(client, url) }
    }

    pub fn bearer(mut self, token: &str) -> anyhow::Result<Self> {
        self.headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        Ok(self)
    }

    pub async fn send(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let response = self.client.request(self.method.clone(), &self.url).headers(self.headers.clone()).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let took = started.elapsed();
        if status != self.expect {
            anyhow::bail!("{} {} answered {status}: {}", self.method, self.url, String::from_utf8_lossy(&body));
        }
        Ok(took)
    }
}

impl Op for Request {
    type Sample = Duration;
    async fn run(&mut self) -> anyhow::Result<Duration> {
        self.send().await
    }
}

/// Two requests for the same thing, one after the other in alternating order, so that both see
/// the same conditions: the difference is what the second path adds.
pub struct Paired {
    pub reference: Request,
    pub measured: Request,
    flip: bool,
}

impl Paired {
    pub fn new(reference: Request, measured: Request) -> Self {
        Self { reference, measured, flip: false }
    }
}

impl Op for Paired {
    /// (reference, measured)
    type Sample = (Duration, Duration);
    async fn run(&mut self) -> anyhow::Result<(Duration, Duration)> {
        self.flip = !self.flip;
        if self.flip {
            let reference = self.reference.send().await?;
            Ok((reference, self.measured.send().await?))
        } else {
            let measured = self.measured.send().await?;
            Ok((self.reference.send().await?, measured))
        }
    }
}
