// Auth0 stand-in for the local stack and the tests: oidc-provider with Auth0's paths and an
// issuer ending in "/". Instead of a hosted login page it offers a plain form at
// /interaction/:uid (POST sub, email, name to /interaction/:uid/login), so a test or a developer
// chooses who signs in on every login, without a browser. Local use only.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const host = '127.0.0.1';
const port = Number(process.env.IDP_PORT ?? 4400);
const issuer = `http://${host}:${port}/`;
const clientId = process.env.IDP_CLIENT_ID ?? 'voice-local';
const clientSecret = process.env.IDP_CLIENT_SECRET ?? 'voice-local-secret';
const redirectUris = (process.env.IDP_REDIRECT_URIS ?? 'http://127.0.0.1:3000/auth/callback').split(',');
const logoutRedirectUris = (process.env.IDP_LOGOUT_REDIRECT_URIS ?? 'http://localhost:5173/').split(',');

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

// Who signed in, by sub, as typed into the login form.
const accounts = new Map();

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      post_logout_redirect_uris: logoutRedirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  routes: {
    authorization: '/authorize',
    token: '/oauth/token',
    jwks: '/.well-known/jwks.json',
    userinfo: '/userinfo',
    end_session: '/oidc/logout',
  },
  jwks: { keys: [signingKey] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Auth0 puts the profile claims in the ID token itself.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    // Auth0's logout asks nothing: the stand-in submits oidc-provider's confirmation itself.
    rpInitiatedLogout: {
      logoutSource: async (ctx, form) => {
        ctx.type = 'html';
        ctx.body = `<!doctype html><title>Signing out</title>
${form.replace('</form>', '<input type="hidden" name="logout" value="yes"></form>')}
<noscript><button form="op.logoutForm">Sign out</button></noscript>
<script>document.getElementById('op.logoutForm').submit()</script>`;
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // A first-party app: no consent screen, as with Auth0's "skip consent".
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email_verified: true, ...accounts.get(sub) }),
  }),
  cookies: { keys: ['local-stand-in-only'] },
  ttl: { AuthorizationCode: 60, IdToken: 3600, AccessToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
});

async function formBody(req) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

const loginForm = (uid) => `<!doctype html><title>Local sign-in</title>
<form method="post" action="/interaction/${uid}/login">
<label>sub <input name="sub" value="auth0|local-dev"></label>
<label>email <input name="email" value="dev@example.com"></label>
<label>email verified <input name="email_verified" value="true"></label>
<label>name <input name="name" value="Local Developer"></label>
<button>Sign in</button></form>`;

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const [, uid, login] = match;
  await provider.interactionDetails(ctx.req, ctx.res);
  if (!login && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = loginForm(uid);
    return undefined;
  }
  if (login && ctx.method === 'POST') {
    const form = await formBody(ctx.req);
    const sub = form.get('sub');
    if (!sub || !form.get('email')) {
      ctx.status = 400;
      ctx.body = 'sub and email are required';
      return undefined;
    }
    // `email_verified=false` mints an unverified address (tests of REQUIRE_VERIFIED_EMAIL).
    const verified = form.get('email_verified') !== 'false';
    accounts.set(sub, { email: form.get('email'), name: form.get('name') ?? undefined, email_verified: verified });
    await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: sub } }, { mergeWithLastSubmission: false });
    return undefined;
  }
  ctx.status = 405;
  return undefined;
});

provider.listen(port, host, () => {
  console.log(`oidc-provider (Auth0 stand-in) listening on ${issuer}`);
});
