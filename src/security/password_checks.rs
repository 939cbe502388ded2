//! Password checks on a few dedicated threads, behind a bounded queue.
//!
//! One argon2id check costs tens of milliseconds of CPU and 19 MiB of memory, which each
//! thread allocates once and reuses ([`Scratch`]). On tokio's
//! blocking pool (up to 512 threads, which transcoding also uses) a flood of logins would take
//! threads and memory without bound and starve conversions. Here at most `threads` checks run
//! at once and at most `queue` more wait; a login past that is refused at once
//! ([`CheckError::Busy`]), before anything is looked up. A waiting check whose caller has gone
//! (the client hung up) is skipped rather than computed for nobody.

use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::password::{self, Scratch};

/// The pool: its threads stop once it and every [`Admitted`] from it are dropped.
pub struct PasswordChecks {
    /// One place per running or waiting check, held from admission until the check is done.
    places: Arc<Semaphore>,
    checks: mpsc::Sender<Check>,
}

#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckError {
    #[error("every password check place is taken")]
    Busy,
    #[error("the password check threads have stopped")]
    Stopped,
}

/// A place in the pool, taken before the stored hash is looked up.
pub struct Admitted {
    place: OwnedSemaphorePermit,
    checks: mpsc::Sender<Check>,
}

struct Check {
    password: String,
    /// The stored hash; `None` for an unknown user, whose check costs the same and fails.
    stored: Option<String>,
    reply: oneshot::Sender<bool>,
    /// Freed when the check is done or skipped.
    _place: OwnedSemaphorePermit,
}

impl PasswordChecks {
    /// Starts `threads` (at least 1) check threads with room for `queue` waiting checks.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<PasswordChecks> {
        assert!(threads >= 1, "a password check pool needs a thread");
        let (checks, receiver) = mpsc::channel::<Check>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 1..=threads {
            let receiver = receiver.clone();
            std::thread::Builder::new().name(format!("password-check-{n}")).spawn(move || run_checks(&receiver))?;
        }
        Ok(PasswordChecks { places: Arc::new(Semaphore::new(threads + queue)), checks })
    }

    /// A place for one check, or [`CheckError::Busy`] when all are taken.
    pub fn admit(&self) -> Result<Admitted, CheckError> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| CheckError::Busy)?;
        Ok(Admitted { place, checks: self.checks.clone() })
    }
}

impl Admitted {
    /// Whether `password` matches `stored` (never, for `None`, after the same work).
    pub async fn verify(self, password: String, stored: Option<String>) -> Result<bool, CheckError> {
        let (reply, answer) = oneshot::channel();
        let check = Check { password, stored, reply, _place: self.place };
        self.checks.send(check).map_err(|_| CheckError::Stopped)?;
        answer.await.map_err(|_| CheckError::Stopped)
    }
}

/// One check thread: takes checks until the pool is gone, all in the same argon2 memory.
fn run_checks(receiver: &Mutex<mpsc::Receiver<Check>>) {
    let mut scratch = Scratch::default();
    loop {
        let next = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
        let Ok(check) = next else {
            return;
        };
        if check.reply.is_closed() {
            continue;
        }
        let matched = match &check.stored {
            Some(stored) => password::verify(&mut scratch, &check.password, stored),
            None => {
                password::verify_nothing(&mut scratch, &check.password);
                false
            }
        };
        let _ = check.reply.send(matched);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_running_and_waiting_places_a_check_is_refused_until_one_frees() {
        let pool = PasswordChecks::start(1, 2).unwrap();
        let taken: Vec<Admitted> = (0..3).map(|_| pool.admit().unwrap()).collect();
        assert_eq!(pool.admit().err(), Some(CheckError::Busy));
        drop(taken);
        assert!(pool.admit().is_ok());
    }

    #[tokio::test]
    async fn checks_match_only_the_right_password_and_unknown_users_never() {
        let pool = PasswordChecks::start(2, 0).unwrap();
        let stored = password::hash("correct horse").unwrap();
        let check = |password: &str, stored: Option<&str>| {
            pool.admit().unwrap().verify(password.to_owned(), stored.map(str::to_owned))
        };
        assert_eq!(check("correct horse", Some(&stored)).await, Ok(true));
        assert_eq!(check("wrong horse", Some(&stored)).await, Ok(false));
        assert_eq!(check("correct horse", None).await, Ok(false));
    }
}
