// A Workers-style function: `export default { fetch(request, env, ctx) }`, as Cloudflare
// Workers (and Deno Deploy, Bun) write them. For an `http` trigger cs-js turns Sous' HTTP event
// into a `Request` and the `Response` returned into the result ({statusCode, headers, body in
// base64}); `env` holds the version's config.env (process.env), `ctx.waitUntil` work is
// finished before the activation ends.
//
//   cs-invoker-pool run examples/workers-router --trigger http --env SERVICE=orders \
//     --event '{"rawPath":"/hello","rawQueryString":"name=Ana","headers":{"host":"api.example.com"},"requestContext":{"http":{"method":"GET"}}}'

/** The path and query of a request URL (`https://host/path?a=1`). */
function route(url) {
  const rest = url.slice(url.indexOf('/', url.indexOf('//') + 2));
  const [path, query = ''] = rest.split('?');
  const params = new Map();
  for (const pair of query.split('&').filter(Boolean)) {
    const [k, v = ''] = pair.split('=').map((s) => decodeURIComponent(s.replace(/\+/g, ' ')));
    params.set(k, v);
  }
  return { path, params };
}

export default {
  async fetch(request, env, ctx) {
    const { path, params } = route(request.url);
    if (request.method === 'GET' && path === '/hello') {
      return Response.json({ hello: params.get('name') ?? 'world', service: env.SERVICE ?? 'cs-js' });
    }
    if (request.method === 'POST' && path === '/orders') {
      let order;
      try {
        order = await request.json();
      } catch {
        return Response.json({ error: 'the body must be JSON' }, { status: 400 });
      }
      // Bookkeeping that need not delay the answer, and must still happen.
      ctx.waitUntil(Promise.resolve().then(() => console.log(`order ${order.id} accepted`)));
      return Response.json({ accepted: order.id }, { status: 201, headers: { location: `/orders/${order.id}` } });
    }
    return new Response(`no route for ${request.method} ${path}`, { status: 404 });
  },
};
