// Service Bus: the change topic with one filtered, session-enabled subscription per catalog map, and
// the queues. Everything about the entities comes from topology.json (`dualsync deploy topology`),
// which is generated from maps/, so the template cannot drift from the catalog.

@description('Namespace name (6-50 characters, globally unique).')
param namespaceName string

param location string

@description('Standard is the smallest tier with topics and sessions.')
@allowed([
  'Standard'
  'Premium'
])
param sku string = 'Standard'

@description('The topology object from topology.json.')
param topology object

param tags object = {}

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    minimumTlsVersion: '1.2'
    // The app uses its managed identity; shared access keys stay enabled only because the Dataverse
    // Service Bus service endpoint and Finance business events authenticate with SAS (send-only rules below).
    disableLocalAuth: false
  }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: namespace
  name: topology.topic.name
  properties: topology.topic.properties
}

resource subscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = [for s in topology.subscriptions: {
  parent: topic
  name: s.name
  properties: s.properties
}]

// Named $Default on purpose: ARM gives every new subscription a $Default TrueFilter rule; a rule of the
// same name replaces it, so each subscription receives its own map's notifications only.
resource rules 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2022-10-01-preview' = [for (s, i) in topology.subscriptions: {
  parent: subscriptions[i]
  name: s.rule.name
  properties: {
    filterType: 'SqlFilter'
    sqlFilter: {
      sqlExpression: s.rule.sqlExpression
    }
  }
}]

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [for q in topology.queues: {
  parent: namespace
  name: q.name
  properties: q.properties
}]

// Send-only SAS rules for the senders that cannot use Entra ID (Dataverse service endpoint, Finance
// business events). Azure generates the keys; read them after deployment, never from this template.
resource ingressSendRules 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2022-10-01-preview' = [for (q, i) in topology.queues: if (startsWith(q.setting, 'DUALSYNC_INGRESS_QUEUE_')) {
  parent: queues[i]
  name: 'send'
  properties: {
    rights: [
      'Send'
    ]
  }
}]

// Finance business events take a namespace-level Send policy (their Key Vault secret is a connection
// string without EntityPath), so one namespace rule with Send rights only, for that sender alone.
resource businessEventsSendRule 'Microsoft.ServiceBus/namespaces/authorizationRules@2022-10-01-preview' = {
  parent: namespace
  name: 'finance-business-events-send'
  properties: {
    rights: [
      'Send'
    ]
  }
}

output namespaceId string = namespace.id
output namespaceName string = namespace.name
@description('Host name the app connects to with its managed identity (ServiceBusConnection__fullyQualifiedNamespace).')
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
