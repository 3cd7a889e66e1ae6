//! Group administration: DeleteGroups, DescribeGroups, ConsumerGroupDescribe and ListGroups.

use super::*;

impl Coordinator {
    /// Deletes empty groups and their offsets (DeleteGroups).
    pub fn delete_group(&self, group_id: &str) -> Option<ResponseError> {
        if let Some(e) = self.not_coordinator(group_id) {
            return Some(e);
        }
        let mut groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return Some(ResponseError::GroupIdNotFound);
        };
        if !group.is_empty() {
            return Some(ResponseError::NonEmptyGroup);
        }
        let keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
        if self.store.delete(group_id, &keys).is_err() {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        groups.remove(group_id);
        None
    }

    /// A KIP-848 group as ConsumerGroupDescribe shows it: Err when missing or classic.
    pub fn describe_consumer(&self, group_id: &str) -> Result<ConsumerGroupView, ResponseError> {
        if let Some(e) = self.not_coordinator(group_id) {
            return Err(e);
        }
        let groups = self.lock();
        let group = groups.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let c = group
            .consumer
            .as_ref()
            .ok_or(ResponseError::GroupIdNotFound)?;
        Ok(ConsumerGroupView {
            state: c.state_name().to_string(),
            group_epoch: c.group_epoch,
            assignment_epoch: c.assignment_epoch,
            assignor: c.assignor(),
            members: c
                .members
                .values()
                .map(|m| ConsumerMemberView {
                    member: m.clone(),
                    target: c.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        self.lock().get(group_id).map(Group::view)
    }

    pub fn list(&self) -> Vec<GroupView> {
        let mut out: Vec<GroupView> = self.lock().values().map(Group::view).collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }
}
