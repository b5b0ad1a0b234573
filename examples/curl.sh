#!/usr/bin/env bash
# A walkthrough of quire's API with curl and jq: register, log in, ask who you
# are, write a post, list posts, vote, refresh the tokens, log out, and see the
# old access token refused.
#
#   QUIRE_URL=http://127.0.0.1:8000 bash curl.sh
set -euo pipefail

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "curl example failed: $tool is not installed" >&2; exit 1; }
done

QUIRE_URL=${QUIRE_URL:-http://127.0.0.1:8000}
ENDPOINT="${QUIRE_URL%/}/graphql"

SUFFIX=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
USERNAME="curl_$SUFFIX"
EMAIL="curl_$SUFFIX@example.com"
PASSWORD="correct horse battery staple $SUFFIX"
TITLE="Hello from curl $SUFFIX"

fail() {
  echo "curl example failed: $*" >&2
  exit 1
}

# gql TOKEN QUERY [VARIABLES]: posts one operation, with the bearer token when
# TOKEN is not empty, and prints the response body.
gql() {
  local token=$1 query=$2 variables=${3:-'{}'}
  local body
  body=$(jq -nc --arg query "$query" --argjson variables "$variables" \
    '{query: $query, variables: $variables}')
  local auth=()
  if [[ -n $token ]]; then
    auth=(-H "Authorization: Bearer $token")
  fi
  local out status
  out=$(curl -sS --max-time 30 -w '\n%{http_code}' "$ENDPOINT" \
    -H 'Content-Type: application/json' \
    "${auth[@]}" \
    -d "$body") ||
    fail "could not reach $ENDPOINT"
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ -n $out ]] || fail "HTTP $status with an empty body from $ENDPOINT"
  printf '%s\n' "$out"
}

# expect_ok STEP RESPONSE: fails unless the response has data and no errors.
expect_ok() {
  local step=$1 response=$2
  if ! jq -e 'type == "object" and (has("errors") | not) and .data != null' <<<"$response" >/dev/null 2>&1 ||
    [[ -z $response ]]; then
    fail "$step: $(jq -c '.errors // .' <<<"$response" 2>/dev/null || echo "$response")"
  fi
}

# field RESPONSE FILTER: one value from a response, failing when it is missing.
field() {
  local value
  value=$(jq -r "$2 // empty" <<<"$1")
  [[ -n $value ]] || fail "no $2 in $(jq -c . <<<"$1")"
  printf '%s' "$value"
}

echo "quire at $ENDPOINT"

RESPONSE=$(gql '' 'mutation($input: RegisterInput!) { register(input: $input) { user { id username } } }' \
  "$(jq -nc --arg email "$EMAIL" --arg username "$USERNAME" --arg password "$PASSWORD" \
    '{input: {email: $email, username: $username, password: $password}}')")
expect_ok register "$RESPONSE"
USER_ID=$(field "$RESPONSE" .data.register.user.id)
echo "register: created $USERNAME ($USER_ID)"

RESPONSE=$(gql '' 'mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken expiresIn } }' \
  "$(jq -nc --arg email "$EMAIL" --arg password "$PASSWORD" '{input: {email: $email, password: $password}}')")
expect_ok login "$RESPONSE"
ACCESS=$(field "$RESPONSE" .data.login.accessToken)
REFRESH=$(field "$RESPONSE" .data.login.refreshToken)
EXPIRES_IN=$(field "$RESPONSE" .data.login.expiresIn)
echo "login: access token for $EXPIRES_IN s"

RESPONSE=$(gql "$ACCESS" '{ me { id username email } }')
expect_ok me "$RESPONSE"
[[ $(jq -r .data.me.username <<<"$RESPONSE") == "$USERNAME" ]] || fail "me: not $USERNAME: $RESPONSE"
echo "me: $USERNAME <$(jq -r .data.me.email <<<"$RESPONSE")>"

RESPONSE=$(gql "$ACCESS" 'mutation($input: CreatePostInput!) { createPost(input: $input) { id title published author { username } } }' \
  "$(jq -nc --arg title "$TITLE" '{input: {title: $title, body: "Written by the curl example.", published: true}}')")
expect_ok createPost "$RESPONSE"
POST=$(field "$RESPONSE" .data.createPost.id)
[[ $(jq -r .data.createPost.published <<<"$RESPONSE") == true ]] || fail "createPost: made a draft: $RESPONSE"
echo "createPost: \"$TITLE\" ($POST)"

RESPONSE=$(gql "$ACCESS" 'query($first: Int!) { posts(first: $first) { edges { node { id title author { username } voteCount } } pageInfo { hasNextPage endCursor } } }' \
  '{"first": 20}')
expect_ok posts "$RESPONSE"
jq -e --arg id "$POST" '.data.posts.edges | any(.node.id == $id)' <<<"$RESPONSE" >/dev/null ||
  fail "posts: the new post is not on the first page: $RESPONSE"
echo "posts: $(jq '.data.posts.edges | length' <<<"$RESPONSE") on the first page, the new post among them"

RESPONSE=$(gql "$ACCESS" 'mutation($id: ID!) { votePost(id: $id) { id voteCount viewerHasVoted } }' \
  "$(jq -nc --arg id "$POST" '{id: $id}')")
expect_ok votePost "$RESPONSE"
[[ $(jq -r .data.votePost.viewerHasVoted <<<"$RESPONSE") == true ]] || fail "votePost: vote not recorded: $RESPONSE"
[[ $(jq -r .data.votePost.voteCount <<<"$RESPONSE") == 1 ]] || fail "votePost: expected 1 vote: $RESPONSE"
echo "votePost: 1 vote"

RESPONSE=$(gql '' 'mutation($token: String) { refresh(refreshToken: $token) { accessToken refreshToken } }' \
  "$(jq -nc --arg token "$REFRESH" '{token: $token}')")
expect_ok refresh "$RESPONSE"
NEW_REFRESH=$(field "$RESPONSE" .data.refresh.refreshToken)
[[ $NEW_REFRESH != "$REFRESH" ]] || fail "refresh: returned the same refresh token"
ACCESS=$(field "$RESPONSE" .data.refresh.accessToken)
REFRESH=$NEW_REFRESH
echo "refresh: got a new token pair"

RESPONSE=$(gql "$ACCESS" '{ me { username } }')
expect_ok "me after refresh" "$RESPONSE"
[[ $(jq -r .data.me.username <<<"$RESPONSE") == "$USERNAME" ]] || fail "me after refresh: not $USERNAME: $RESPONSE"
echo "me after refresh: $USERNAME"

RESPONSE=$(gql '' 'mutation($token: String) { logout(refreshToken: $token) }' \
  "$(jq -nc --arg token "$REFRESH" '{token: $token}')")
expect_ok logout "$RESPONSE"
[[ $(jq -r .data.logout <<<"$RESPONSE") == true ]] || fail "logout: $RESPONSE"
echo "logout: session ended"

# The access token has not expired, but its session has ended.
RESPONSE=$(gql "$ACCESS" '{ me { username } }')
CODE=$(jq -r '.errors[0].extensions.code // empty' <<<"$RESPONSE" 2>/dev/null || true)
[[ $CODE == UNAUTHENTICATED ]] || fail "me after logout: expected UNAUTHENTICATED, got $RESPONSE"
echo "me after logout: refused with $CODE"

echo "curl example ok"
