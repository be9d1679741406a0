//! The job status machine, with AWS's status names. Every status change in batchops goes
//! through [`JobStatus::can_become`] and is then persisted with a conditional write on the
//! current status, so two actors can never move one job along two paths.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    New,
    Preparing,
    Suspended,
    Ready,
    Active,
    Pausing,
    Paused,
    Completing,
    Complete,
    Cancelling,
    Cancelled,
    Failing,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 13] = [
        JobStatus::New,
        JobStatus::Preparing,
        JobStatus::Suspended,
        JobStatus::Ready,
        JobStatus::Active,
        JobStatus::Pausing,
        JobStatus::Paused,
        JobStatus::Completing,
        JobStatus::Complete,
        JobStatus::Cancelling,
        JobStatus::Cancelled,
        JobStatus::Failing,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "New",
            JobStatus::Preparing => "Preparing",
            JobStatus::Suspended => "Suspended",
            JobStatus::Ready => "Ready",
            JobStatus::Active => "Active",
            JobStatus::Pausing => "Pausing",
            JobStatus::Paused => "Paused",
            JobStatus::Completing => "Completing",
            JobStatus::Complete => "Complete",
            JobStatus::Cancelling => "Cancelling",
            JobStatus::Cancelled => "Cancelled",
            JobStatus::Failing => "Failing",
            JobStatus::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// `Complete`, `Cancelled` and `Failed` never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Cancelled | JobStatus::Failed
        )
    }

    /// Workers drop chunks of jobs in these statuses without running them.
    pub fn drops_work(self) -> bool {
        matches!(
            self,
            JobStatus::Cancelling | JobStatus::Cancelled | JobStatus::Failing | JobStatus::Failed
        )
    }

    /// The statuses a caller may ask for (UpdateJobStatus's `RequestedJobStatus`) while a job
    /// is in this one: confirm (`Ready`) a suspended job, pause an active one, resume
    /// (`Active`) a paused or pausing one, and cancel any job that is not ending. The API
    /// refuses every other request with this rule, and DescribeJob shows it
    /// (`AllowedUpdates`), so the console and the API cannot disagree.
    pub fn requestable(self) -> Vec<JobStatus> {
        use JobStatus::*;
        let mut out = match self {
            Suspended => vec![Ready],
            Active => vec![Paused],
            Pausing | Paused => vec![Active],
            _ => vec![],
        };
        if self.can_become(Cancelling) {
            out.push(Cancelled);
        }
        out
    }

    /// The legal transitions (SPEC §2).
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        match (self, next) {
            (New, Preparing) => true,
            // `Failing`: its manifest broke after a chunk was queued, before it was `Active`.
            (Preparing, Suspended | Active | Ready | Failing) => true,
            (Suspended, Ready) => true,
            (Ready, Active | Failing) => true,
            (Active, Pausing | Completing | Failing) => true,
            // A paused job whose manifest cannot be read any more fails.
            (Pausing, Paused | Active | Failing) => true,
            (Paused, Active | Failing) => true,
            // A report that can never be written fails the job.
            (Completing, Complete | Failed) => true,
            (Failing, Failed) => true,
            (Cancelling, Cancelled) => true,
            // Nothing was queued yet: cancelled in one write.
            (New | Suspended, Cancelled) => true,
            // Cancel from any status that is not already ending (AWS refuses to cancel a
            // failing job).
            (from, Cancelling) => {
                !from.is_terminal() && !matches!(from, Cancelling | Completing | Failing)
            }
            // A job fails outright when its manifest cannot be read or is invalid.
            (New | Preparing | Suspended | Ready, Failed) => true,
            _ => false,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus::{self, *};

    #[test]
    fn names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobStatus::parse("active"), None);
    }

    #[test]
    fn requestable_statuses_follow_the_status_machine() {
        let table: [(JobStatus, &[JobStatus]); 13] = [
            (New, &[Cancelled]),
            (Preparing, &[Cancelled]),
            (Suspended, &[Ready, Cancelled]),
            (Ready, &[Cancelled]),
            (Active, &[Paused, Cancelled]),
            (Pausing, &[Active, Cancelled]),
            (Paused, &[Active, Cancelled]),
            (Completing, &[]),
            (Complete, &[]),
            (Cancelling, &[]),
            (Cancelled, &[]),
            (Failing, &[]),
            (Failed, &[]),
        ];
        for (from, allowed) in table {
            assert_eq!(from.requestable(), allowed, "{from}");
        }
    }

    #[test]
    fn happy_path_is_legal() {
        for (a, b) in [
            (New, Preparing),
            (Preparing, Active),
            (Active, Completing),
            (Completing, Complete),
        ] {
            assert!(a.can_become(b), "{a} -> {b}");
        }
    }

    #[test]
    fn illegal_transitions_are_refused() {
        for (a, b) in [
            (New, Active),
            (New, Complete),
            (Active, Complete),
            (Complete, Active),
            (Complete, Cancelling),
            (Failed, Active),
            (Cancelled, Cancelling),
            (Completing, Cancelling),
            (Paused, Complete),
            (Active, Preparing),
        ] {
            assert!(!a.can_become(b), "{a} -> {b} must be refused");
        }
    }

    #[test]
    fn terminal_statuses_go_nowhere() {
        for from in [Complete, Cancelled, Failed] {
            for to in JobStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn cancel_from_any_running_status() {
        for from in [New, Preparing, Suspended, Ready, Active, Pausing, Paused] {
            assert!(from.can_become(Cancelling), "{from}");
        }
    }

    #[test]
    fn a_failing_job_cannot_be_cancelled() {
        assert!(!Failing.can_become(Cancelling));
        assert!(!Failing.can_become(Cancelled));
    }

    #[test]
    fn a_paused_job_whose_manifest_breaks_can_fail() {
        assert!(Pausing.can_become(Failing) && Paused.can_become(Failing));
    }

    #[test]
    fn a_job_whose_manifest_breaks_after_chunks_were_queued_can_fail() {
        for from in [Preparing, Ready, Active, Pausing, Paused] {
            assert!(from.can_become(Failing), "{from}");
        }
    }

    #[test]
    fn a_report_that_cannot_be_written_fails_a_completing_job() {
        assert!(Completing.can_become(Failed));
    }
}
