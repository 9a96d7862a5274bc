// dualsync on Azure: Function App (Flex Consumption, Python), storage, monitoring, Key Vault and
// Service Bus, wired with the app's system-assigned managed identity. No secret is written here or
// in any parameter file: secret settings are Key Vault references, filled in after deployment
// (docs/deploy.md). Deploy with:
//   az deployment group create -g <rg> -f infra/main.bicep -p @infra/main.parameters.json

targetScope = 'resourceGroup'

// --- names and placement -----------------------------------------------------------------------------
@description('Short prefix of every resource name (letters, digits, dashes).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'dualsync'

param location string = resourceGroup().location

param tags object = {
  app: 'dualsync'
}

// --- the two environments ----------------------------------------------------------------------------
@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com')
param dataverseUrl string

@description('Finance environment URL, e.g. https://contoso.operations.dynamics.com')
param financeUrl string

@description('Finance legal entity (dataAreaId) of the service user.')
@maxLength(4)
param financeDefaultCompany string = 'usmf'

// --- identity towards Dataverse and Finance ----------------------------------------------------------
@description('managed_identity: the app\'s own identity is the application user in both environments. client_secret: an app registration whose secret is in Key Vault as dualsync-client-secret.')
@allowed([
  'managed_identity'
  'client_secret'
])
param authMode string = 'managed_identity'

@description('Entra tenant of the app registration (client_secret mode).')
param tenantId string = subscription().tenantId

@description('App registration client id (client_secret mode); empty for the system-assigned identity.')
param clientId string = ''

@description('Expect the x-dualsync-key header on webhooks, with the value kept in Key Vault as dualsync-webhook-secret.')
param webhookSecretEnabled bool = false

@description('Object id of the person or pipeline that sets the Key Vault secrets (gets Key Vault Secrets Officer); empty to skip.')
param secretsOfficerPrincipalId string = ''

// --- Function App --------------------------------------------------------------------------------------
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Flex Consumption instance memory.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of instances Flex Consumption scales out to (bounds the load on Dataverse and Finance too).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Send traces to Application Insights (DUALSYNC_TELEMETRY_ENABLED).')
param telemetryEnabled bool = true

param logRetentionInDays int = 30

@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

// --- engine tuning (defaults are shared/settings.py's) -------------------------------------------------
param httpTimeoutSeconds int = 30
param retryBudgetSeconds int = 120
param maxConcurrency int = 16
@description('Rows per $batch / UpsertMultiple request.')
@minValue(1)
@maxValue(1000)
param batchSize int = 200
@description('Batched Dataverse upserts: upsert_multiple (UpsertMultiple per chunk, $batch where it cannot serve) or batch.')
@allowed([
  'upsert_multiple'
  'batch'
])
param dataverseBulkWrite string = 'upsert_multiple'
@description('Times a change waiting for its parent is scheduled again before it is dead-lettered as dependency-missing.')
param dependencyRetryAttempts int = 12
@description('First delay (seconds) of a rescheduled change; each further attempt doubles it, up to 15 minutes.')
param retryBaseDelaySeconds int = 5
param maxBodyBytes int = 1048576
param pullSchedule string = '0 */5 * * * *'
param pullBudgetSeconds int = 240
param pullMaxRows int = 50000
param pullOverlapSeconds int = 300
param pageSize int = 5000
param initialSyncConcurrency int = 4
param initialSyncRangeRows int = 50000
param stateTablePrefix string = 'dualsync'

// --- derived names -------------------------------------------------------------------------------------
var suffix = uniqueString(resourceGroup().id, namePrefix)
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var storageName = take('st${compactPrefix}${suffix}', 24)
var vaultName = take('kv-${compactPrefix}-${suffix}', 24)
var deploymentContainer = 'app-package'
// Generated from maps/ by `dualsync deploy topology`; a test keeps it in step with the catalog.
var topology = loadJsonContent('topology.json')

// Built-in role definition ids, from "Azure built-in roles"
// (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles; MicrosoftDocs/azure-docs
// articles/role-based-access-control/built-in-roles.md). They are the same in every tenant.
var roles = {
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419' // Azure Service Bus Data Owner
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer
}

// --- storage: the host's own storage, the deployment package and the state tables -----------------------
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    // The host (AzureWebJobsStorage__accountName), the deployment container and the state store all
    // use the managed identity, so account keys are switched off.
    allowSharedKeyAccess: false
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: {
    publicAccess: 'None'
  }
}

// --- monitoring -----------------------------------------------------------------------------------------
module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    namePrefix: '${namePrefix}-${suffix}'
    location: location
    retentionInDays: logRetentionInDays
    tags: tags
  }
}

// --- Key Vault (RBAC mode) -------------------------------------------------------------------------------
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
  }
}

// --- Service Bus --------------------------------------------------------------------------------------------
module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    namespaceName: 'sb-${namePrefix}-${suffix}'
    location: location
    sku: serviceBusSku
    topology: topology
    tags: tags
  }
}

// --- Function App on Flex Consumption ---------------------------------------------------------------------
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${namePrefix}-${suffix}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${namePrefix}-${suffix}'
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// --- role assignments for the app's managed identity -------------------------------------------------------
resource serviceBusNamespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: 'sb-${namePrefix}-${suffix}'
}

resource sbDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBusNamespace.id, functionApp.id, roles.serviceBusDataOwner)
  scope: serviceBusNamespace
  dependsOn: [
    serviceBus
  ]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionApp.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(secretsOfficerPrincipalId)) {
  name: guid(vault.id, secretsOfficerPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: secretsOfficerPrincipalId
  }
}

// --- app settings ----------------------------------------------------------------------------------------------
// Secret settings are Key Vault references; the secrets are set by the operator (docs/deploy.md).
// Not set here: DUALSYNC_STATIC_TOKEN (emulators only), DUALSYNC_STATE_SQLITE_PATH and
// DUALSYNC_BROKER_PATH (local backends), DUALSYNC_CLIENT_CERTIFICATE_PATH (certificate mode is not
// offered by this template), DUALSYNC_MAPS_DIR (defaults to the maps/ shipped in the package), and the
// two connection strings DUALSYNC_STATE_TABLE_CONNECTION / DUALSYNC_SERVICEBUS_CONNECTION (the managed
// identity replaces them).
var secretReference = '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/'
var secretSettings = union(
  authMode == 'client_secret' ? { DUALSYNC_CLIENT_SECRET: '${secretReference}dualsync-client-secret/)' } : {},
  webhookSecretEnabled ? { DUALSYNC_WEBHOOK_SECRET: '${secretReference}dualsync-webhook-secret/)' } : {}
)
// DUALSYNC_CHANGE_TOPIC, DUALSYNC_INGRESS_QUEUE_DATAVERSE, DUALSYNC_INGRESS_QUEUE_FINANCE, DUALSYNC_WORK_QUEUE
var entitySettings = toObject(concat([topology.topic], topology.queues), e => e.setting, e => e.name)

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  // Settings take effect once the identity may use what they point at.
  dependsOn: [
    sbDataOwner
    blobDataOwner
    queueDataContributor
    tableDataContributor
    secretsUser
  ]
  properties: union(entitySettings, secretSettings, {
    AzureWebJobsStorage__accountName: storage.name
    APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
    ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    DUALSYNC_DATAVERSE_URL: dataverseUrl
    DUALSYNC_FINANCE_URL: financeUrl
    DUALSYNC_FINANCE_DEFAULT_COMPANY: financeDefaultCompany
    DUALSYNC_AUTH_MODE: authMode
    DUALSYNC_TENANT_ID: tenantId
    DUALSYNC_CLIENT_ID: clientId
    DUALSYNC_HTTP_TIMEOUT_SECONDS: string(httpTimeoutSeconds)
    DUALSYNC_RETRY_BUDGET_SECONDS: string(retryBudgetSeconds)
    DUALSYNC_MAX_CONCURRENCY: string(maxConcurrency)
    DUALSYNC_BATCH_SIZE: string(batchSize)
    DUALSYNC_DATAVERSE_BULK_WRITE: dataverseBulkWrite
    DUALSYNC_DEPENDENCY_RETRY_ATTEMPTS: string(dependencyRetryAttempts)
    DUALSYNC_RETRY_BASE_DELAY_SECONDS: string(retryBaseDelaySeconds)
    DUALSYNC_STATE_BACKEND: 'table'
    DUALSYNC_STATE_TABLE_ENDPOINT: 'https://${storage.name}.table.${environment().suffixes.storage}'
    DUALSYNC_STATE_TABLE_PREFIX: stateTablePrefix
    DUALSYNC_TRANSPORT: 'servicebus'
    DUALSYNC_SERVICEBUS_NAMESPACE: serviceBus.outputs.fullyQualifiedNamespace
    DUALSYNC_MAX_BODY_BYTES: string(maxBodyBytes)
    DUALSYNC_PULL_SCHEDULE: pullSchedule
    DUALSYNC_PULL_BUDGET_SECONDS: string(pullBudgetSeconds)
    DUALSYNC_PULL_MAX_ROWS: string(pullMaxRows)
    DUALSYNC_PULL_OVERLAP_SECONDS: string(pullOverlapSeconds)
    DUALSYNC_PAGE_SIZE: string(pageSize)
    DUALSYNC_INITIAL_SYNC_CONCURRENCY: string(initialSyncConcurrency)
    DUALSYNC_INITIAL_SYNC_RANGE_ROWS: string(initialSyncRangeRows)
    DUALSYNC_TELEMETRY_ENABLED: telemetryEnabled ? 'true' : 'false'
  })
}

output functionAppName string = functionApp.name
output functionAppHostName string = functionApp.properties.defaultHostName
output principalId string = functionApp.identity.principalId
output keyVaultName string = vault.name
output serviceBusNamespace string = serviceBus.outputs.namespaceName
output storageAccountName string = storage.name
output appInsightsName string = monitoring.outputs.appInsightsName
