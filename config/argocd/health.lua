-- Argo CD health check for deploy.tminus.dev/DeploymentChecklist.
-- Install it under resource.customizations.health.deploy.tminus.dev_DeploymentChecklist
-- in the argocd-cm ConfigMap (docs/gitops.md).
local hs = {}

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end

if obj.status == nil or obj.status.phase == nil or obj.status.phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for tminus to reconcile the checklist"
  return hs
end

if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for tminus to observe the latest spec"
  return hs
end

local phase = obj.status.phase
local ready = condition("Ready")
local message = obj.status.nextAction or ""
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  message = ready.message
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Every phase passed"
  return hs
end

if phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. message
  return hs
end

local degraded = condition("Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message
  return hs
end

local awaiting = condition("AwaitingApproval")
if awaiting ~= nil and awaiting.status == "True" then
  hs.status = "Suspended"
  hs.message = awaiting.message
  return hs
end

hs.status = "Progressing"
hs.message = phase .. ": " .. (obj.status.nextAction or "")
return hs
