// urql against a quire server: sign-up and sign-in, queries, a live
// subscription over WebSocket, token refresh and logout.
//
// Queries and mutations go over HTTP with urql's fetchExchange (queries as GET
// requests while they fit in a URL, mutations as POST); subscriptions go over
// WebSocket with graphql-ws through the subscriptionExchange.
//
//   QUIRE_URL=http://127.0.0.1:8000 node urql.mjs

import { randomBytes } from 'node:crypto';

import { Client, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const baseUrl = process.env.QUIRE_URL || 'http://127.0.0.1:8000';
const httpUrl = new URL('graphql', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
const wsUrl = new URL(httpUrl);
wsUrl.protocol = httpUrl.protocol === 'https:' ? 'wss:' : 'ws:';

// The whole run must finish in this time; a stuck request or socket fails it.
const OVERALL_TIMEOUT_MS = 60_000;
// How long to wait for the subscription to deliver the new post.
const DELIVERY_TIMEOUT_MS = 10_000;

const suffix = randomBytes(4).toString('hex');
const username = `urql_${suffix}`;
const email = `urql_${suffix}@example.com`;
const password = `correct horse battery staple ${suffix}`;
const postTitle = `Hello from urql ${suffix}`;

// The tokens of the current session; the clients read them for each request.
let accessToken = null;
let refreshToken = null;

// The first thing that went wrong with the WebSocket, to explain a failure.
let socketProblem = null;

const wsClient = createClient({
  url: wsUrl.href,
  // Node 20 has no global WebSocket.
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

const client = new Client({
  url: httpUrl.href,
  requestPolicy: 'network-only',
  fetchOptions: () => (accessToken ? { headers: { authorization: `Bearer ${accessToken}` } } : {}),
  exchanges: [
    fetchExchange,
    subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || '' };
        return {
          subscribe(sink) {
            const unsubscribe = wsClient.subscribe(input, sink);
            return { unsubscribe };
          },
        };
      },
    }),
  ],
});

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

// A readable account of a urql CombinedError or any other error.
function describe(error) {
  if (error?.graphQLErrors?.length) {
    return error.graphQLErrors
      .map((e) => `${e.message} [${e.extensions?.code ?? 'no code'}]`)
      .join('; ');
  }
  // A WebSocket that closed surfaces as a network error holding the close event.
  const closed = error?.networkError;
  if (closed && typeof closed.code === 'number' && 'reason' in closed) {
    return `WebSocket closed with code ${closed.code} ${closed.reason}`.trim();
  }
  // fetch reports a refused connection and the like in the cause.
  const cause = error?.cause?.message ?? error?.networkError?.cause?.message;
  const message = error?.networkError?.message ?? error?.message ?? String(error);
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
// WebSocket if anything did.
async function step(name, run) {
  try {
    return await run();
  } catch (error) {
    const message = describe(error);
    const socket = socketProblem && !message.includes(socketProblem) ? ` (WebSocket: ${socketProblem})` : '';
    throw new Error(`${name}: ${message}${socket}`);
  }
}

// A query or mutation that must succeed: any error, GraphQL or network, throws.
async function query(document, variables) {
  const result = await client.query(document, variables).toPromise();
  if (result.error) throw result.error;
  return result.data;
}

async function mutate(document, variables) {
  const result = await client.mutation(document, variables).toPromise();
  if (result.error) throw result.error;
  return result.data;
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
    subscription = client.subscription(POST_CREATED, {}).subscribe((result) => {
      if (result.error) reject(result.error);
      else if (result.data?.postCreated?.title === postTitle) resolve(result.data.postCreated);
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
        input: { title: postTitle, body: 'Written by the urql example.', published: true },
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
  const refused = await step('me after logout', () => client.query(ME, {}).toPromise());
  check(refused.error, 'me after logout was not refused');
  check(!refused.error.networkError, `me after logout failed on the network: ${describe(refused.error)}`);
  const code = refused.error.graphQLErrors[0]?.extensions?.code;
  check(code === 'UNAUTHENTICATED', `me after logout failed with ${code}, not UNAUTHENTICATED`);
  console.log(`me after logout: refused with ${code}`);
}

const watchdog = setTimeout(() => {
  console.error(`urql example failed: no result after ${OVERALL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
watchdog.unref();

try {
  await main();
  console.log('urql example ok');
} catch (error) {
  console.error(`urql example failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  await closeSocket();
}
