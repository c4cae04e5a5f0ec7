// Validates an order with zod (an npm library) and answers its total, or 422 with every
// problem found. Bundled into ../function.js with esbuild (see README.md): cs-js loads one ES
// module and has no require() or node_modules at run time.
import { z } from 'zod';

const Order = z.object({
  id: z.string().min(1),
  email: z.string().email(),
  items: z
    .array(
      z.object({
        sku: z.string().regex(/^SKU-\d+$/),
        qty: z.number().int().positive(),
        price: z.number().nonnegative(),
      }),
    )
    .min(1),
  coupon: z.string().optional(),
});

export default async function handle(event) {
  const parsed = Order.safeParse(event);
  if (!parsed.success) {
    const errors = parsed.error.issues.map((i) => ({
      path: i.path.join('.'),
      code: i.code,
      message: i.message,
    }));
    return json(422, { errors });
  }
  const order = parsed.data;
  const total = order.items.reduce((sum, i) => sum + i.qty * i.price, 0);
  return json(200, { id: order.id, items: order.items.length, total });
}

function json(statusCode, value) {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
}
