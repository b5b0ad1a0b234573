// Apollo Client against a quire server: sign-up and sign-in, queries, a live
// subscription over WebSocket, token refresh and logout.
//
// Queries and mutations go over HTTP through automatic persisted queries: each
// operation is first sent as a SHA-256 hash alone, and only when the server
// answers PERSISTED_QUERY_NOT_FOUND is it sent again with the full text, which
// the server then keeps. Subscriptions go over WebSocket with graphql-ws.
//
//   QUIRE_URL=http://127.0.0.1:8000 node apollo.mjs

import { createHash, randomBytes } from 'node:crypto';

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { CombinedGraphQLErrors } from '@apollo/client/errors';
import { SetContextLink } from '@apollo/client/link/context';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { OperationTypeNode } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

// Node 20 has no global WebSocket. graphql-ws is given the `ws` class below;
// GraphQLWsLink also reads the global's constants when it reports a failed
// connection, so it gets the same class.
globalThis.WebSocket ??= WebSocket;

const baseUrl = process.env.QUIRE_URL || 'http://127.0.0.1:8000';
const httpUrl = new URL('graphql', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
const wsUrl = new URL(httpUrl);
wsUrl.protocol = httpUrl.protocol === 'https:' ? 'wss:' : 'ws:';

// The whole run must finish in this time; a stuck request or socket fails it.
const OVERALL_TIMEOUT_MS = 60_000;
// How long to wait for the subscription to deliver the new post.
const DELIVERY_TIMEOUT_MS = 10_000;

const suffix = randomBytes(4).toString('hex');
const username = `apollo_${suffix}`;
const email = `apollo_${suffix}@example.com`;
const password = `correct horse battery staple ${suffix}`;
const postTitle = `Hello from Apollo ${suffix}`;

// The tokens of the current session; the links below read them for each request.
let accessToken = null;
let refreshToken = null;

// What the persisted-query round trips looked like, counted from the requests
// the HTTP link sends: operations sent as a hash alone, those of them the server
// ran and those it did not know, and operations resent with their text.
// `ignored` counts hashes the server read as an empty query, as a server without
// persisted queries does.
const apq = { hashOnly: 0, answered: 0, notFound: 0, resent: 0, ignored: 0, otherRefusals: [] };

async function countingFetch(input, init) {
  let body = null;
  if (typeof init?.body === 'string') {
    try {
      body = JSON.parse(init.body);
    } catch {
      body = null;
    }
  }
  const persisted = body?.extensions?.persistedQuery !== undefined;
  const hashOnly = persisted && typeof body.query !== 'string';
  if (hashOnly) apq.hashOnly += 1;
  else if (persisted) apq.resent += 1;
  const response = await fetch(input, init);
  if (hashOnly) {
    const result = await response
      .clone()
      .json()
      .catch(() => null);
    const codes = (result?.errors ?? []).map((e) => e.extensions?.code);
    if (codes.includes('PERSISTED_QUERY_NOT_FOUND')) apq.notFound += 1;
    else if (codes.some((code) => typeof code === 'string' && code.startsWith('PERSISTED_QUERY'))) {
      apq.otherRefusals.push(...codes);
    } else if (codes.includes('GRAPHQL_PARSE_FAILED')) apq.ignored += 1;
    else if (result !== null) apq.answered += 1;
  }
  return response;
}

const authLink = new SetContextLink((prevContext) =>
  accessToken
    ? { headers: { ...prevContext.headers, authorization: `Bearer ${accessToken}` } }
    : {},
);

const persistedQueryLink = new PersistedQueryLink({
  sha256: (text) => createHash('sha256').update(text).digest('hex'),
});

const httpLink = new HttpLink({ uri: httpUrl.href, fetch: countingFetch });

// The first thing that went wrong with the WebSocket, to explain a failure.
let socketProblem = null;

const wsClient = createClient({
  url: wsUrl.href,
  webSocketImpl: WebSocket,
  // Read when the socket opens, so it carries the token current at that time.
  connectionParams: () => ({ Authorization: `Bearer ${accessToken}` }),
  // Fail at once rather than reconnecting, and do not wait for ever for the
  // server to acknowledge the connection.
  retryAttempts: 0,
  connectionAckWaitTimeout: 5_000,
  on: {
    error: (event) => {
      socketProblem = event?.message || event?.error?.message || 'socket error';
    },
    closed: (event) => {
      if (event?.code !== 1000) socketProblem ??= `closed with code ${event?.code} ${event?.reason ?? ''}`.trim();
    },
  },
});

const link = ApolloLink.split(
  ({ operationType }) => operationType === OperationTypeNode.SUBSCRIPTION,
  new GraphQLWsLink(wsClient),
  ApolloLink.from([authLink, persistedQueryLink, httpLink]),
);

const client = new ApolloClient({ link, cache: new InMemoryCache() });

const REGISTER = gql`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      user {
        id
        username
      }
    }
  }
`;

const LOGIN = gql`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      accessToken
      refreshToken
      expiresIn
    }
  }
`;

const ME = gql`
  query Me {
    me {
      id
      username
      email
    }
  }
`;

const POSTS = gql`
  query Posts($first: Int!) {
    posts(first: $first) {
      edges {
        node {
          id
          title
          author {
            username
          }
          voteCount
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`;

const POST_CREATED = gql`
  subscription PostCreated {
    postCreated {
      id
      title
      author {
        username
      }
    }
  }
`;

const CREATE_POST = gql`
  mutation CreatePost($input: CreatePostInput!) {
    createPost(input: $input) {
      id
      title
      published
    }
  }
`;

const REFRESH = gql`
  mutation Refresh($refreshToken: String) {
    refresh(refreshToken: $refreshToken) {
      accessToken
      refreshToken
    }
  }
`;

const LOGOUT = gql`
  mutation Logout($refreshToken: String) {
    logout(refreshToken: $refreshToken)
  }
`;

function describe(error) {
  if (CombinedGraphQLErrors.is(error)) {
    return error.errors
      .map((e) => `${e.message} [${e.extensions?.code ?? 'no code'}]`)
      .join('; ');
  }
  // fetch reports a refused connection and the like in the cause.
  const cause = error?.cause?.message;
  const message = error?.message ?? String(error);
  return cause ? `${message} (${cause})` : message;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Closes the WebSocket, if open, so that nothing keeps the process alive.
async function closeSocket() {
  await wsClient.dispose().catch(() => {});
}

// Runs one step; a failure names the step, and what went wrong with the
// WebSocket or with persisted queries if anything did.
async function step(name, run) {
  try {
    return await run();
  } catch (error) {
    let message = describe(error);
    if (socketProblem && !message.includes(socketProblem)) message += ` (WebSocket: ${socketProblem})`;
    if (apq.ignored > 0) {
      message += ' (the server read a persisted-query hash as an empty query: it does not support them)';
    }
    throw new Error(`${name}: ${message}`);
  }
}

// A query or mutation that must succeed: GraphQL errors reject the promise.
async function query(document, variables) {
  const { data } = await client.query({ query: document, variables, fetchPolicy: 'no-cache' });
  return data;
}

async function mutate(document, variables) {
  const { data } = await client.mutate({ mutation: document, variables, fetchPolicy: 'no-cache' });
  return data;
}

async function main() {
  console.log(`quire at ${httpUrl.href}`);

  const registered = await step('register', () =>
    mutate(REGISTER, { input: { email, username, password } }),
  );
  check(registered.register.user.username === username, 'register returned another user');
  console.log(`register: created ${username} (${registered.register.user.id})`);

  const login = await step('login', () => mutate(LOGIN, { input: { email, password } }));
  check(login.login.accessToken, 'login returned no access token');
  check(login.login.refreshToken, 'login returned no refresh token');
  accessToken = login.login.accessToken;
  refreshToken = login.login.refreshToken;
  console.log(`login: access token for ${login.login.expiresIn} s`);

  const me = await step('me', () => query(ME));
  check(me.me.username === username, `me is ${me.me.username}, not ${username}`);
  console.log(`me: ${me.me.username} <${me.me.email}>`);

  const page = await step('posts', () => query(POSTS, { first: 5 }));
  const { edges, pageInfo } = page.posts;
  console.log(`posts: ${edges.length} on the first page, hasNextPage ${pageInfo.hasNextPage}`);

  // Subscribe, and wait until the server has acknowledged the connection before
  // writing the post, so that the event is not missed.
  const connected = new Promise((resolve) => wsClient.on('connected', resolve));
  let subscription;
  const delivered = new Promise((resolve, reject) => {
    subscription = client.subscribe({ query: POST_CREATED, fetchPolicy: 'no-cache' }).subscribe({
      next: ({ data, error }) => {
        if (error) reject(error);
        else if (data?.postCreated?.title === postTitle) resolve(data.postCreated);
      },
      error: reject,
      complete: () => reject(new Error('the subscription ended before the post arrived')),
    });
  });
  // Rejections are handled where `delivered` is awaited.
  delivered.catch(() => {});
  try {
    await step('subscribe', () =>
      withTimeout(Promise.race([connected, delivered]), DELIVERY_TIMEOUT_MS, 'the WebSocket connection'),
    );
    // The subscribe message follows the acknowledgement; give the server a
    // moment to start the subscription.
    await sleep(300);
    console.log(`subscribe: listening for postCreated on ${wsUrl.href}`);

    const created = await step('createPost', () =>
      mutate(CREATE_POST, {
        input: { title: postTitle, body: 'Written by the Apollo Client example.', published: true },
      }),
    );
    check(created.createPost.published === true, 'createPost made a draft');
    console.log(`createPost: "${created.createPost.title}" (${created.createPost.id})`);

    const event = await step('postCreated', () =>
      withTimeout(delivered, DELIVERY_TIMEOUT_MS, 'the postCreated event'),
    );
    check(event.id === created.createPost.id, `postCreated delivered post ${event.id}, not ${created.createPost.id}`);
    check(event.author.username === username, `postCreated names ${event.author.username} as the author`);
    console.log(`postCreated: received "${event.title}" by ${event.author.username}`);
  } finally {
    subscription?.unsubscribe();
    await closeSocket();
  }

  const refreshed = await step('refresh', () => mutate(REFRESH, { refreshToken }));
  check(refreshed.refresh.accessToken, 'refresh returned no access token');
  check(refreshed.refresh.refreshToken, 'refresh returned no refresh token');
  check(refreshed.refresh.refreshToken !== refreshToken, 'refresh returned the same refresh token');
  accessToken = refreshed.refresh.accessToken;
  refreshToken = refreshed.refresh.refreshToken;
  console.log('refresh: got a new token pair');

  const meAgain = await step('me after refresh', () => query(ME));
  check(meAgain.me.username === username, `me is ${meAgain.me.username}, not ${username}`);
  console.log(`me after refresh: ${meAgain.me.username}`);

  const logout = await step('logout', () => mutate(LOGOUT, { refreshToken }));
  check(logout.logout === true, `logout returned ${logout.logout}`);
  console.log('logout: session ended');

  // The access token has not expired, but its session has ended.
  const refused = await step('me after logout', () =>
    client.query({ query: ME, fetchPolicy: 'no-cache', errorPolicy: 'all' }),
  );
  check(refused.error, 'me after logout was not refused');
  check(CombinedGraphQLErrors.is(refused.error), `me after logout failed otherwise: ${describe(refused.error)}`);
  const code = refused.error.errors[0]?.extensions?.code;
  check(code === 'UNAUTHENTICATED', `me after logout failed with ${code}, not UNAUTHENTICATED`);
  console.log(`me after logout: refused with ${code}`);

  // Every operation above went out as a hash first. A fresh server knows none of
  // them, so the first use of each was refused and resent with its text; the
  // repeated `me` was then answered from its hash alone.
  console.log(
    `persisted queries: ${apq.hashOnly} sent as a hash alone, ${apq.answered} answered from the hash, ` +
      `${apq.notFound} unknown and resent with the text`,
  );
  check(apq.otherRefusals.length === 0, `the server refused persisted queries: ${apq.otherRefusals.join(', ')}`);
  check(
    apq.resent === apq.notFound,
    `${apq.resent} operations resent with their text, but only ${apq.notFound} answered PERSISTED_QUERY_NOT_FOUND`,
  );
  check(
    apq.hashOnly === apq.answered + apq.notFound,
    `${apq.hashOnly - apq.answered - apq.notFound} operations sent as a hash were not understood`,
  );
  check(apq.answered > 0, 'the server answered no operation from its hash alone');
}

const watchdog = setTimeout(() => {
  console.error(`apollo example failed: no result after ${OVERALL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
watchdog.unref();

try {
  await main();
  console.log('apollo example ok');
} catch (error) {
  console.error(`apollo example failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  await closeSocket();
  client.stop();
}
