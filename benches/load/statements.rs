//! The SQL statements a scenario sent, counted by the app itself (BEGIN and COMMIT included): in
//! this process `Db::statements()` of each instance; from the binary, its `/metrics`
//! (`clinic_connect_sql_statements_total`).

use clinic_connect::db::Db;

pub enum Counter {
    /// The instances in this process (two in the shared storm).
    InProcess(Vec<Db>),
    /// The child's `/metrics`. Serving it sends statements of its own (the counts it shows) before
    /// it reads the counter, so a difference of two scrapes includes the second scrape's:
    /// `overhead`, measured once with nothing else going on.
    Metrics { url: String, overhead: u64 },
}

impl Counter {
    pub fn of(db: &Db) -> Self {
        Counter::InProcess(vec![db.clone()])
    }

    /// The binary at `base` (`http://127.0.0.1:{port}`), calibrated once it is quiet: its
    /// start-up work is over when the count moves by the same small amount — a scrape's own —
    /// three times in a row.
    pub async fn child(base: &str) -> anyhow::Result<Self> {
        let mut counter = Counter::Metrics { url: format!("{base}/metrics"), overhead: 0 };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut last = counter.read().await?;
        let mut steps = Vec::new();
        let overhead = loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let now = counter.read().await?;
            steps.push(now - last);
            last = now;
            if let [.., a, b, c] = steps[..] {
                if a == b && b == c && c < 10 {
                    break c;
                }
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "the child never went quiet: {steps:?}");
        };
        if let Counter::Metrics { overhead: o, .. } = &mut counter {
            *o = overhead;
        }
        Ok(counter)
    }

    /// The count so far.
    pub async fn read(&self) -> anyhow::Result<u64> {
        match self {
            Counter::InProcess(dbs) => Ok(dbs.iter().map(Db::statements).sum()),
            Counter::Metrics { url, .. } => {
                let text = reqwest::Client::builder().no_proxy().build()?.get(url).send().await?.text().await?;
                let line = text.lines().find_map(|l| l.strip_prefix("clinic_connect_sql_statements_total "));
                let line = line.ok_or_else(|| anyhow::anyhow!("no clinic_connect_sql_statements_total in /metrics"))?;
                Ok(line.trim().parse()?)
            }
        }
    }

    /// The statements sent since `before` (a `read`), without the counting's own.
    pub async fn since(&self, before: u64) -> anyhow::Result<u64> {
        let overhead = match self {
            Counter::InProcess(_) => 0,
            Counter::Metrics { overhead, .. } => *overhead,
        };
        Ok(self.read().await?.saturating_sub(before).saturating_sub(overhead))
    }
}
